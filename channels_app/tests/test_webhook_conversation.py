"""A whole conversation through the fitness example flow, for each provider: signed webhooks
in, the real flow service, and exactly what the provider's API received."""

import itertools
import json
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import responses
from django.conf import settings

from conversations.models import ChatThread, Message
from flows.services import flow_create
from tests import factories

from .webhook_support import cloud_payload, post_cloud, post_twilio, twilio_params

pytestmark = pytest.mark.django_db

FITNESS = Path("/work/shared/examples/flows/fitness-welcome.json")
if not FITNESS.exists():  # the copy shipped with the repository
    FITNESS = Path(__file__).resolve().parents[2] / "flows" / "examples" / "fitness-welcome.json"
SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"


def fitness(channel):
    return flow_create(
        tenant=channel.tenant, channel=channel, definition=json.loads(FITNESS.read_text())
    )


class TwilioRecorder:
    """Twilio's Messages.json: answers 201 with a fresh sid and keeps what was posted."""

    def __init__(self):
        self.sids = (f"SM{n:032x}" for n in itertools.count(1))
        self.posts = []

    def __call__(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        self.posts.append(form)
        body = {"sid": next(self.sids), "status": "queued", "account_sid": SID}
        return 201, {}, json.dumps(body)


@responses.activate
def test_fitness_conversation_over_twilio(client, tenant):
    # given: the fitness flow on a Twilio channel, and Twilio's API recorded
    tenant.name = "Acme Fitness"
    tenant.save()
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    fitness(channel)
    api = TwilioRecorder()
    responses.add_callback(responses.POST, TWILIO_URL, callback=api)
    turns = iter(range(100))

    def say(body):
        n = next(turns)
        params = twilio_params("inbound_text", Body=body, MessageSid=f"SMin{n:030d}")
        params["SmsSid"] = params["SmsMessageSid"] = params["MessageSid"]
        assert post_twilio(client, params, token="chan-token").status_code == 200

    # when
    say("Hello")
    say("1")
    say("2026-12-01")
    say("not an email")
    say("maria@example.com")

    # then: exactly these requests reached Twilio, in this order
    callback = f"{settings.PUBLIC_BASE_URL}/api/webhooks/whatsapp"
    expected_bodies = [
        "Hi Maria Silva! Welcome to Acme Fitness.",
        "How can we help you today?\n\n1. Book a free trial\n2. Membership prices\n"
        "3. Something else",
        "Great! Which day suits you? (YYYY-MM-DD)",
        "And your email, so we can send the confirmation?",
        "That does not look like an email address.",
        "Done: your free trial is on 2026-12-01. See you soon!",
    ]
    assert api.posts == [
        {
            "From": "whatsapp:+15550000001",
            "To": "whatsapp:+5521987654321",
            "Body": body,
            "StatusCallback": callback,
        }
        for body in expected_bodies
    ]
    outbound = Message.objects.filter(direction="outbound").order_by("created_at")
    assert [m.status for m in outbound] == ["sent"] * 6
    assert [m.provider_message_id for m in outbound] == [f"SM{n:032x}" for n in range(1, 7)]
    assert Message.objects.filter(direction="inbound", processed_at__isnull=True).count() == 0

    # and a duplicate of the last delivery answers nothing
    params = twilio_params("inbound_text", Body="maria@example.com", MessageSid=f"SMin{4:030d}")
    assert post_twilio(client, params, token="chan-token").status_code == 200
    assert len(api.posts) == 6


@responses.activate
def test_fitness_conversation_over_cloud_api(client, tenant):
    # given
    tenant.name = "Acme Fitness"
    tenant.save()
    channel = factories.CloudChannelFactory(tenant=tenant)
    number_id = channel.settings["phone_number_id"]
    fitness(channel)
    posted = []
    wamids = (f"wamid.OUT{n:04d}" for n in itertools.count(1))

    def graph(request):
        posted.append(json.loads(request.body))
        return (
            200,
            {},
            json.dumps({"messaging_product": "whatsapp", "messages": [{"id": next(wamids)}]}),
        )

    responses.add_callback(
        responses.POST, f"https://graph.facebook.test/v22.0/{number_id}/messages", callback=graph
    )
    turns = iter(range(100))

    def send(message):
        payload = cloud_payload("text", number_id)
        message = {
            "from": "16505551234",
            "id": f"wamid.IN{next(turns):04d}",
            "timestamp": "1749416383",
            **message,
        }
        payload["entry"][0]["changes"][0]["value"]["messages"] = [message]
        assert post_cloud(client, payload).status_code == 200

    # when: text, then a tap on the "prices" button, then "no" typed as text
    send({"type": "text", "text": {"body": "hi"}})
    send(
        {
            "type": "interactive",
            "interactive": {
                "type": "button_reply",
                "button_reply": {"id": "prices", "title": "Membership prices"},
            },
        }
    )
    send(
        {
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "no", "title": "No"}},
        }
    )

    # then
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234"}

    def text(body):
        return {**base, "type": "text", "text": {"preview_url": False, "body": body}}

    def buttons(body, choices):
        return {
            **base,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": body},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": cid, "title": title}}
                        for cid, title in choices
                    ]
                },
            },
        }

    assert posted == [
        text("Hi Sheena Nelson! Welcome to Acme Fitness."),
        buttons(
            "How can we help you today?",
            [
                ("trial", "Book a free trial"),
                ("prices", "Membership prices"),
                ("other", "Something else"),
            ],
        ),
        text("Memberships start at 39/month, no joining fee."),
        buttons("Would you like to book a free trial?", [("yes", "Yes"), ("no", "No")]),
        text("Thanks for reaching out, Sheena Nelson!"),
    ]
    thread = ChatThread.objects.get()
    assert thread.messages.filter(direction="outbound", status="sent").count() == 5
    inbound = thread.messages.filter(direction="inbound").order_by("created_at")
    assert [m.metadata.get("interactive_id") for m in inbound] == [None, "prices", "no"]
