"""Message templates over the API: listing and syncing a channel's, sending one on a thread
(the request the provider gets), the 409 that names them, refusals, tenant isolation."""

import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import responses
from django.urls import reverse
from django.utils import timezone

from channels_app.models import ChannelTemplate
from channels_app.tests.webhook_support import load, run_on_commit
from conversations.models import Message
from tests import factories
from tests.api_helpers import error_of, key_client

pytestmark = pytest.mark.django_db

WABA = "102290129340398"
TEMPLATES_URL = f"https://graph.facebook.test/v22.0/{WABA}/message_templates"
SID = "AC11111111111111111111111111111111"
TWILIO_MESSAGES = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"
REMINDER_SID = "HX2d2ddbbe8bca9ba2a3e2bcd91ca3c16b"


@pytest.fixture
def api(tenant):
    return key_client(tenant)


@pytest.fixture
def cloud_channel(tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    channel.settings = {**channel.settings, "business_account_id": WABA}
    channel.save()
    return channel


@pytest.fixture
def quiet_thread(cloud_channel):
    """A Cloud API thread whose contact last wrote two days ago: the window is closed."""
    contact = factories.ContactFactory(tenant=cloud_channel.tenant, phone="+16505551234")
    return factories.ThreadFactory(
        channel=cloud_channel,
        contact=contact,
        last_inbound_at=timezone.now() - timedelta(days=2),
    )


@pytest.fixture
def order_update(cloud_channel):
    """Meta's `order_update` as a sync stores it: a header parameter and two body ones."""
    return factories.ChannelTemplateFactory(
        channel=cloud_channel,
        name="order_update",
        language="en_US",
        body="Order {{1}}\n\nHi {{1}}, your order arrives on {{2}}.",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
            {"type": "BODY", "text": "Hi {{1}}, your order arrives on {{2}}."},
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Thanks"}]},
        ],
        parameters=[
            {"component": "header", "name": "1"},
            {"component": "body", "name": "1"},
            {"component": "body", "name": "2"},
        ],
    )


def messages_url(thread):
    return reverse("thread-messages", kwargs={"tenant": thread.tenant_id, "thread": thread.pk})


def templates_url(channel, *, sync=False):
    name = "channel-templates-sync" if sync else "channel-templates"
    return reverse(name, kwargs={"tenant": channel.tenant_id, "channel": channel.pk})


# -- listing and syncing ------------------------------------------------------------------------


def test_the_list_shows_the_channels_templates_only(
    api, cloud_channel, order_update, other_tenant, django_assert_max_num_queries
):
    # given: templates of another channel of the tenant and of another tenant
    factories.ChannelTemplateFactory(
        channel=factories.CloudChannelFactory(tenant=cloud_channel.tenant)
    )
    factories.ChannelTemplateFactory(channel=factories.CloudChannelFactory(tenant=other_tenant))
    factories.ChannelTemplateFactory(channel=cloud_channel, name="paused_one", status="paused")

    # when
    with django_assert_max_num_queries(6):
        response = api.get(templates_url(cloud_channel))

    # then
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(row["name"], row["sendable"]) for row in rows] == [
        ("order_update", True),
        ("paused_one", False),
    ]
    assert rows[0]["parameters"][0] == {"component": "header", "name": "1"}


def test_another_tenants_channel_templates_are_404(api, other_tenant):
    foreign = factories.CloudChannelFactory(tenant=other_tenant)
    factories.ChannelTemplateFactory(channel=foreign)
    assert api.get(templates_url(foreign)).status_code == 404
    assert api.post(templates_url(foreign, sync=True)).status_code == 404


def test_a_foreign_channel_under_our_tenant_is_404(api, tenant, other_tenant):
    foreign = factories.CloudChannelFactory(tenant=other_tenant)
    url = reverse("channel-templates", kwargs={"tenant": tenant.pk, "channel": foreign.pk})
    assert api.get(url).status_code == 404
    sync = reverse("channel-templates-sync", kwargs={"tenant": tenant.pk, "channel": foreign.pk})
    assert api.post(sync).status_code == 404


@responses.activate
def test_sync_endpoint_replays_the_provider_and_reports(api, cloud_channel):
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page1.json"))
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page2.json"))

    response = api.post(templates_url(cloud_channel, sync=True))

    assert response.status_code == 200, response.content
    assert response.json() == {"created": 3, "updated": 0, "gone": 0, "templates": 3}


@responses.activate
def test_a_refused_sync_is_502_with_the_providers_reason(api, cloud_channel, order_update):
    responses.get(TEMPLATES_URL, json=load("cloud_api/error_100_templates.json"), status=400)

    response = api.post(templates_url(cloud_channel, sync=True))

    assert response.status_code == 502
    error = error_of(response, extra=("provider_code",))
    assert error["code"] == "provider_error" and error["provider_code"] == "100"
    assert "nonexisting field (message_templates)" in error["message"]
    order_update.refresh_from_db()
    assert order_update.gone_at is None  # nothing changed


def test_a_sync_without_business_account_id_is_409(api, tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    response = api.post(templates_url(channel, sync=True))
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "templates_unavailable" and "business_account_id" in error["message"]


# -- sending -----------------------------------------------------------------------------------


def test_free_text_outside_the_window_is_409_naming_the_templates(api, quiet_thread, order_update):
    factories.ChannelTemplateFactory(channel=quiet_thread.channel, name="draft", status="pending")

    response = api.post(messages_url(quiet_thread), {"text": "Still there?"}, format="json")

    assert response.status_code == 409
    error = error_of(response, extra=("templates",))
    assert error["code"] == "outside_window"
    assert error["templates"] == [
        {"name": "order_update", "language": "en_US", "parameters": ["1", "1", "2"]}
    ]
    assert not Message.objects.filter(thread=quiet_thread).exists()


@responses.activate
def test_a_cloud_template_goes_out_as_a_template_message(api, quiet_thread, order_update):
    # given
    responses.post(
        f"https://graph.facebook.test/v22.0/{quiet_thread.channel.settings['phone_number_id']}/messages",
        json=load("cloud_api/messages_sent_200.json"),
    )
    body = {
        "template": {
            "name": "order_update",
            "language": "en_US",
            "parameters": ["#1234", "Maria", "Friday"],
        }
    }

    # when
    with run_on_commit():
        response = api.post(messages_url(quiet_thread), body, format="json")

    # then
    assert response.status_code == 201, response.content
    assert json.loads(responses.calls[0].request.body) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "#1234"}]},
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Maria"},
                        {"type": "text", "text": "Friday"},
                    ],
                },
            ],
        },
    }
    message = Message.objects.get(pk=response.json()["id"])
    assert (message.kind, message.status, message.sender) == ("template", "sent", "agent")
    assert message.text == "Order #1234\n\nHi Maria, your order arrives on Friday."
    assert response.json()["content"]["template"] == {
        "name": "order_update",
        "language": "en_US",
        "content_sid": "",
        "parameters": ["#1234", "Maria", "Friday"],
    }


@responses.activate
def test_named_parameters_carry_their_names(api, quiet_thread):
    factories.ChannelTemplateFactory(
        channel=quiet_thread.channel,
        name="welcome",
        body="Hello {{first_name}}",
        components=[{"type": "BODY", "text": "Hello {{first_name}}"}],
        parameters=[{"component": "body", "name": "first_name"}],
        named=True,
    )
    responses.post(
        f"https://graph.facebook.test/v22.0/{quiet_thread.channel.settings['phone_number_id']}/messages",
        json=load("cloud_api/messages_sent_200.json"),
    )
    spec = {"name": "welcome", "language": "en_US", "parameters": ["Maria"]}

    with run_on_commit():
        assert (
            api.post(messages_url(quiet_thread), {"template": spec}, format="json").status_code
            == 201
        )

    sent = json.loads(responses.calls[0].request.body)["template"]["components"]
    assert sent == [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Maria", "parameter_name": "first_name"}],
        }
    ]


@responses.activate
def test_a_template_the_provider_refuses_is_failed_with_its_reason(api, quiet_thread, order_update):
    responses.post(
        f"https://graph.facebook.test/v22.0/{quiet_thread.channel.settings['phone_number_id']}/messages",
        json=load("cloud_api/error_132001.json"),
        status=400,
    )
    spec = {"name": "order_update", "language": "en_US", "parameters": ["#1", "Maria", "Friday"]}

    with run_on_commit():
        response = api.post(messages_url(quiet_thread), {"template": spec}, format="json")

    assert response.status_code == 201
    message = Message.objects.get(pk=response.json()["id"])
    assert (message.status, message.error_code) == ("failed", "132001")
    assert message.error_detail == "template name (order_update) does not exist in en_US"
    assert len(responses.calls) == 1  # permanent: never sent again


@responses.activate
def test_a_twilio_template_goes_out_with_content_sid_and_variables(api, tenant):
    # given
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    factories.ChannelTemplateFactory(
        channel=channel,
        name="appointment_reminder",
        language="en",
        content_sid=REMINDER_SID,
        body="Hi {{1}}, your appointment is at {{2}}.",
        components={"twilio/text": {"body": "Hi {{1}}, your appointment is at {{2}}."}},
        parameters=[{"name": "1", "default": "name"}, {"name": "2", "default": "time"}],
    )
    thread = factories.ThreadFactory(
        channel=channel,
        contact=factories.ContactFactory(tenant=tenant, phone="+5521987654321"),
        last_inbound_at=timezone.now() - timedelta(days=3),
    )
    responses.post(TWILIO_MESSAGES, json=load("twilio/messages_create_201.json"), status=201)
    spec = {"content_sid": REMINDER_SID, "variables": {"1": "Maria", "2": "3 pm"}}

    # when
    with run_on_commit():
        response = api.post(messages_url(thread), {"template": spec}, format="json")

    # then
    assert response.status_code == 201, response.content
    sent = {k: v[0] for k, v in parse_qs(responses.calls[0].request.body).items()}
    assert sent["ContentSid"] == REMINDER_SID
    assert json.loads(sent["ContentVariables"]) == {"1": "Maria", "2": "3 pm"}
    assert sent["To"] == "whatsapp:+5521987654321" and sent["From"] == "whatsapp:+15550000001"
    assert "Body" not in sent
    message = Message.objects.get(pk=response.json()["id"])
    assert message.text == "Hi Maria, your appointment is at 3 pm."
    assert message.status == "sent"


def test_four_spaces_in_a_row_are_accepted(api, quiet_thread, order_update):
    spec = {"name": "order_update", "language": "en_US", "parameters": ["a    b", "b", "c"]}
    response = api.post(messages_url(quiet_thread), {"template": spec}, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        (
            {"name": "order_update", "language": "en_US", "parameters": ["x"]},
            "template.parameters",
            "takes 3 parameter(s), not 1",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["a", "b", "  "]},
            "template.parameters[2]",
            "blank",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["a", "b\nc", "d"]},
            "template.parameters[1]",
            "new lines",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["a", "b\rc", "d"]},
            "template.parameters[1]",
            "new lines",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["a", "b", "c\u2028d"]},
            "template.parameters[2]",
            "new lines",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["a\u2029", "b", "c"]},
            "template.parameters[0]",
            "new lines",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["a", "b     c", "d"]},
            "template.parameters[1]",
            "more than 4 spaces",
        ),
        (
            {
                "name": "order_update",
                "language": "en_US",
                "parameters": ["a", "b", "c\u00a0 \u00a0 \u00a0d"],
            },
            "template.parameters[2]",
            "more than 4 spaces",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": ["x" * 61, "b", "c"]},
            "template.parameters[0]",
            "at most 60",
        ),
        (
            {"name": "order_update", "language": "pt_BR", "parameters": []},
            "template",
            "no template order_update (pt_BR)",
        ),
        (
            {"name": "order_update", "language": "en_US", "parameters": [1, 2, 3]},
            "template.parameters",
            "list of strings",
        ),
        ({"name": "order_update"}, "template.language", "required"),
        (
            {"name": "order_update", "language": "en_US", "extra": 1},
            "template",
            "Unknown keys: extra",
        ),
        ({"content_sid": "HXnope", "variables": {}}, "template", "no template HXnope"),
    ],
)
def test_template_values_are_checked_against_the_template(
    api, quiet_thread, order_update, spec, path, message
):
    response = api.post(messages_url(quiet_thread), {"template": spec}, format="json")

    assert response.status_code == 400
    details = error_of(response)["details"]
    assert details[0]["path"] == path and message in details[0]["message"], details
    assert not Message.objects.filter(thread=quiet_thread).exists()


def test_a_template_not_approved_or_gone_is_refused(api, quiet_thread, order_update):
    order_update.status = "paused"
    order_update.save()
    spec = {"name": "order_update", "language": "en_US", "parameters": ["a", "b", "c"]}
    response = api.post(messages_url(quiet_thread), {"template": spec}, format="json")
    assert response.status_code == 400
    assert "not approved (paused)" in error_of(response)["details"][0]["message"]

    ChannelTemplate.objects.filter(pk=order_update.pk).update(
        status="approved", gone_at=timezone.now()
    )
    response = api.post(messages_url(quiet_thread), {"template": spec}, format="json")
    assert "no longer listed" in error_of(response)["details"][0]["message"]


def test_twilio_variables_must_match_the_templates(api, tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    factories.ChannelTemplateFactory(
        channel=channel, content_sid=REMINDER_SID, parameters=[{"name": "1"}, {"name": "2"}]
    )
    thread = factories.ThreadFactory(channel=channel)
    spec = {"content_sid": REMINDER_SID, "variables": {"1": "Maria", "3": "x"}}

    response = api.post(messages_url(thread), {"template": spec}, format="json")

    assert response.status_code == 400
    assert "missing 2; unknown 3" in error_of(response)["details"][0]["message"]


def test_text_and_template_together_or_neither_is_400(api, quiet_thread, order_update):
    both = {"text": "hi", "template": {"name": "order_update", "language": "en_US"}}
    assert api.post(messages_url(quiet_thread), both, format="json").status_code == 400
    assert api.post(messages_url(quiet_thread), {}, format="json").status_code == 400
    assert not Message.objects.exists()


def test_another_tenants_template_cannot_be_sent(api, quiet_thread, other_tenant):
    foreign = factories.ChannelTemplateFactory(
        channel=factories.CloudChannelFactory(tenant=other_tenant), name="theirs"
    )
    spec = {"name": foreign.name, "language": foreign.language, "parameters": ["x"]}
    response = api.post(messages_url(quiet_thread), {"template": spec}, format="json")
    assert response.status_code == 400
    assert not Message.objects.exists()


@responses.activate
def test_a_twilio_template_refusal_is_recorded_with_twilios_reason(api, tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    factories.ChannelTemplateFactory(
        channel=channel, content_sid=REMINDER_SID, parameters=[{"name": "1"}]
    )
    thread = factories.ThreadFactory(channel=channel)
    responses.post(TWILIO_MESSAGES, json=load("twilio/messages_create_400_21656.json"), status=400)
    spec = {"content_sid": REMINDER_SID, "variables": {"1": "Maria"}}

    with run_on_commit():
        response = api.post(messages_url(thread), {"template": spec}, format="json")

    message = Message.objects.get(pk=response.json()["id"])
    assert (message.status, message.error_code) == ("failed", "21656")
    # the twilio client's wording of Twilio's message
    assert message.error_detail.endswith("The ContentVariables Parameter is invalid.")
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    ("template", "path", "message"),
    [
        ('{"name": "order\\u0000", "language": "en_US"}', "template.name", "NUL"),
        ('{"name": "order_update", "language": "en\\u0000"}', "template.language", "NUL"),
        (
            '{"name": "order_update", "language": "en_US", "parameters": ["a", "b\\ud800", "c"]}',
            "template.parameters[1]",
            "lone surrogate",
        ),
        ('{"content_sid": "HX\\u0000", "variables": {}}', "template.content_sid", "NUL"),
        ('{"content_sid": "HX1", "variables": {"1": "\\udfff"}}', "template.variables.1", "lone"),
        ('{"content_sid": "HX1", "variables": {"\\u0000": "x"}}', "template.variables", "key"),
    ],
)
def test_a_nul_or_lone_surrogate_anywhere_in_the_template_is_400(
    api, quiet_thread, order_update, template, path, message
):
    body = '{"template": ' + template + "}"

    response = api.post(messages_url(quiet_thread), body, content_type="application/json")

    assert response.status_code == 400, response.content
    details = error_of(response)["details"]
    assert details[0]["path"] == path and message in details[0]["message"], details
    assert not Message.objects.exists()


# -- who may get a template ---------------------------------------------------------------------


@pytest.fixture
def platform_twilio_channel(tenant):
    """A Twilio channel on the platform's default credentials (none of its own)."""
    return factories.TwilioChannelFactory(tenant=tenant, secrets={})


@responses.activate
def test_a_twilio_channel_on_the_platform_credentials_cannot_sync(api, platform_twilio_channel):
    responses.get("https://content.twilio.test/v1/ContentAndApprovals", json={"contents": []})

    response = api.post(templates_url(platform_twilio_channel, sync=True))

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "templates_unavailable"
    assert "platform's Twilio credentials" in error["message"]
    assert len(responses.calls) == 0  # the platform account's templates are never listed


@responses.activate
def test_a_twilio_channel_on_the_platform_credentials_cannot_send_a_template(
    api, platform_twilio_channel
):
    # given: a template stored earlier (before the channel lost its own credentials)
    factories.ChannelTemplateFactory(
        channel=platform_twilio_channel, content_sid=REMINDER_SID, parameters=[{"name": "1"}]
    )
    thread = factories.ThreadFactory(
        channel=platform_twilio_channel, last_inbound_at=timezone.now() - timedelta(days=2)
    )
    spec = {"content_sid": REMINDER_SID, "variables": {"1": "Maria"}}

    # when
    with run_on_commit():
        response = api.post(messages_url(thread), {"template": spec}, format="json")
    outside = api.post(messages_url(thread), {"text": "hi"}, format="json")

    # then
    assert response.status_code == 409
    assert error_of(response)["code"] == "templates_unavailable"
    assert not Message.objects.exists() and len(responses.calls) == 0
    assert error_of(outside, ("templates",))["templates"] == []  # none offered either


@responses.activate
def test_no_template_goes_to_an_opted_out_contact(api, quiet_thread, order_update):
    contact = quiet_thread.contact
    contact.opted_out_at = timezone.now() - timedelta(days=1)
    contact.save()
    spec = {"name": "order_update", "language": "en_US", "parameters": ["a", "b", "c"]}

    with run_on_commit():
        response = api.post(messages_url(quiet_thread), {"template": spec}, format="json")
    outside = api.post(messages_url(quiet_thread), {"text": "hi"}, format="json")

    assert response.status_code == 409
    assert error_of(response)["code"] == "opted_out"
    assert not Message.objects.exists() and len(responses.calls) == 0
    assert error_of(outside, ("templates",))["templates"] == []


def test_a_flow_template_on_a_platform_credentials_channel_is_stored_failed(
    platform_twilio_channel,
):
    from conversations.services.templates import flow_template_message
    from flows.engine import TemplateSend
    from flows.engine.runtime import OutboundMessage

    factories.ChannelTemplateFactory(
        channel=platform_twilio_channel, content_sid=REMINDER_SID, parameters=[{"name": "1"}]
    )
    thread = factories.ThreadFactory(channel=platform_twilio_channel)
    reply = OutboundMessage(
        text="Hi", template=TemplateSend(content_sid=REMINDER_SID, parameters=("Maria",))
    )

    message = flow_template_message(thread=thread, reply=reply, created_at=timezone.now())

    assert (message.status, message.error_code) == ("failed", "template_unavailable")
    assert "platform's Twilio credentials" in message.error_detail


def test_twilio_refuses_to_send_a_template_on_the_platform_credentials(platform_twilio_channel):
    from channels_app.providers.base import OutboundPayload, PermanentSendError, TemplateMessage
    from channels_app.providers.twilio import TwilioProvider

    payload = OutboundPayload(
        to_phone="+16505551234", template=TemplateMessage(content_sid=REMINDER_SID)
    )
    with pytest.raises(PermanentSendError) as caught:
        TwilioProvider().send_template(channel=platform_twilio_channel, payload=payload)
    assert caught.value.code == "templates_unavailable"
