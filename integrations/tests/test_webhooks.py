"""Webhooks to a tenant's own systems, from the event to the receiver: what is sent to whom,
the body and its signature (checked by a receiver written from the README), retries, the
switch-off, replay, the API and the admin."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse

from channels_app.tests.webhook_support import post_twilio, twilio_params
from conversations.models import ChatThread, Message
from conversations.services.consent import contact_opt_in
from conversations.services.threads import thread_update
from flows.services import flow_create
from integrations import services
from integrations.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.services import (
    EVENTS,
    deliveries_due_send,
    delivery_attempt,
    event_publish,
    webhook_endpoint_create,
)
from integrations.tests.conftest import (
    HOOK_URL,
    OTHER_HOST,
    OTHER_IP,
    PINNED_URL,
    PUBLIC_IP,
)
from tests import factories
from tests.api_helpers import error_of, key_client

README = Path(__file__).resolve().parents[2] / "README.md"
SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"
NUMBER = "+15550000001"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: int = 300) -> bool:
    """A receiver written from the README's words alone: `t=<unix time>,v1=<hex>`, the hex
    being HMAC-SHA256 keyed with the whole secret over "<t>.<body>"; refuse an old `t`."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(mac.hexdigest(), fields["v1"])


def readme_verifier():
    """The Python snippet of the README's "Webhooks to your systems", run as it is."""
    text = README.read_text()
    section = text.split("## Webhooks to your systems", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README snippet", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["verify_chatai_signature"]


def sent(http, url: str = PINNED_URL) -> list:
    return [call for call in http.calls if call.request.url == url]


def body_of(call) -> dict:
    return json.loads(call.request.body)


def twilio_answers(http) -> None:
    sids = (f"SM{n:032d}" for n in itertools.count())
    http.add_callback(
        responses.POST,
        TWILIO_URL,
        callback=lambda request: (201, {}, json.dumps({"sid": next(sids), "status": "queued"})),
    )


def inbound(client, text: str, n: int) -> None:
    params = twilio_params("inbound_text", Body=text, To=f"whatsapp:{NUMBER}")
    params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = f"SMwebhooks{n:04d}"
    assert post_twilio(client, params, token="chan-token").status_code == 200


# --- Exactly the events subscribed, once each ------------------------------------------------


@pytest.mark.django_db
def test_each_endpoint_gets_exactly_the_events_it_subscribed_to_once(
    client, tenant, other_tenant, http
):
    # given: two endpoints of the tenant with different events, one switched off, and an
    # endpoint of another tenant that wants everything
    factories.TwilioChannelFactory(tenant=tenant, phone_number=NUMBER)
    messages, _ = webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["message.received"])
    opt_outs, _ = webhook_endpoint_create(
        tenant=tenant, url=f"https://{OTHER_HOST}/in", events=["contact.opted_out"]
    )
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL + "/off", events=EVENTS, is_active=False)
    webhook_endpoint_create(tenant=other_tenant, url=HOOK_URL + "/other", events=EVENTS)
    for url in (PINNED_URL, f"https://{OTHER_IP}/in", PINNED_URL + "/off", PINNED_URL + "/other"):
        http.add(responses.POST, url, status=200)
    twilio_answers(http)

    # when: a contact writes, then opts out (chatai confirms it with a reply)
    inbound(client, "Hello", 1)
    inbound(client, "stop", 2)

    # then: the message endpoint got both messages, the opt-out endpoint the opt-out, once
    assert [body_of(c)["event"] for c in sent(http)] == ["message.received"] * 2
    message_ids = [body_of(c)["data"]["message"]["id"] for c in sent(http)]
    inbound_ids = Message.objects.filter(direction="inbound").order_by("created_at")
    assert message_ids == [str(pk) for pk in inbound_ids.values_list("pk", flat=True)]
    opt_out_calls = sent(http, f"https://{OTHER_IP}/in")
    assert [body_of(c)["event"] for c in opt_out_calls] == ["contact.opted_out"]
    assert sent(http, PINNED_URL + "/off") == [] and sent(http, PINNED_URL + "/other") == []
    # and every attempt is one logged row, succeeded
    assert WebhookAttempt.objects.filter(delivery__endpoint=messages).count() == 2
    assert WebhookAttempt.objects.filter(delivery__endpoint=opt_outs, succeeded=True).count() == 1
    assert not WebhookDelivery.objects.filter(tenant=other_tenant).exists()


@pytest.mark.django_db
def test_a_duplicate_provider_delivery_is_no_second_event(client, tenant, http):
    factories.TwilioChannelFactory(tenant=tenant, phone_number=NUMBER)
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["message.received"])
    http.add(responses.POST, PINNED_URL, status=200)
    inbound(client, "Hello", 1)
    inbound(client, "Hello", 1)  # Twilio retried the same MessageSid
    assert len(sent(http)) == 1


@pytest.mark.django_db
def test_message_received_body_carries_the_message_and_ids_and_no_phone(client, tenant, http):
    factories.TwilioChannelFactory(tenant=tenant, phone_number=NUMBER)
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["message.received"])
    http.add(responses.POST, PINNED_URL, status=200)

    inbound(client, "Quero agendar", 1)

    message = Message.objects.get(direction="inbound")
    thread = ChatThread.objects.get()
    (call,) = sent(http)
    body = body_of(call)
    delivery = WebhookDelivery.objects.get()
    assert body == {
        "id": str(delivery.event_id),
        "event": "message.received",
        "created_at": delivery.occurred_at.isoformat(),
        "data": {
            "message": {
                "id": str(message.pk),
                "direction": "inbound",
                "kind": "text",
                "text": "Quero agendar",
                "created_at": message.created_at.isoformat(),
                "attachments": [],
            },
            "thread_id": str(thread.pk),
            "contact_id": str(thread.contact_id),
            "channel_id": str(thread.channel_id),
        },
    }
    raw = call.request.body.decode()
    assert "5521987654321" not in raw and "Maria" not in raw  # the sender's number and name
    assert call.request.headers["Host"] == "hooks.example.com"
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers["X-Chatai-Event"] == "message.received"
    assert call.request.headers["X-Chatai-Delivery"] == str(delivery.event_id)


@pytest.mark.django_db
def test_thread_handoff_close_status_flow_and_consent_events(
    tenant, http, django_capture_on_commit_callbacks
):
    # given: an endpoint wanting everything but messages received
    wanted = [e for e in EVENTS if e != "message.received"]
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=wanted)
    http.add(responses.POST, PINNED_URL, status=200)
    channel = factories.TwilioChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(channel=channel)
    contact = thread.contact

    # when: an agent takes over, then closes the thread; the contact opts in
    with django_capture_on_commit_callbacks(execute=True):
        thread_update(thread=thread, needs_human=True)
    with django_capture_on_commit_callbacks(execute=True):
        thread_update(thread=thread, status="closed")
    with django_capture_on_commit_callbacks(execute=True):
        contact_opt_in(contact=contact, source="api")

    # then
    bodies = [body_of(c) for c in sent(http)]
    assert [b["event"] for b in bodies] == ["thread.handoff", "thread.closed", "contact.opted_in"]
    thread_data = {
        "id": str(thread.pk),
        "contact_id": str(contact.pk),
        "channel_id": str(channel.pk),
        "status": "open",
        "needs_human": True,
    }
    assert bodies[0]["data"] == {"thread": thread_data, "reason": "agent", "by": "agent"}
    assert bodies[1]["data"] == {
        "thread": {**thread_data, "status": "closed", "needs_human": False}
    }
    contact.refresh_from_db()
    assert bodies[2]["data"] == {
        "contact_id": str(contact.pk),
        "source": "api",
        "opted_in_at": contact.opted_in_at.isoformat(),
        "opted_out_at": None,
    }


END_FLOW = {
    "schema_version": 1,
    "flow_id": "greeting",
    "name": "Greeting",
    "trigger": {"default": True},
    "start": "bye",
    "nodes": [{"id": "bye", "type": "end", "text": "Thanks, bye!"}],
}
HANDOFF_FLOW = {
    "schema_version": 1,
    "flow_id": "to-a-person",
    "name": "To a person",
    "trigger": {"default": True},
    "start": "human",
    "nodes": [
        {"id": "human", "type": "handoff", "text": "A person replies soon.", "reason": "asked"}
    ],
}


@pytest.mark.django_db
def test_flow_completed_and_flow_handoff_and_message_status(client, tenant, other_tenant, http):
    # given: a channel whose flow ends at once, another whose flow hands off
    wanted = ["flow.completed", "thread.handoff", "message.status"]
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=wanted)
    http.add(responses.POST, PINNED_URL, status=200)
    twilio_answers(http)
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number=NUMBER)
    flow = flow_create(tenant=tenant, channel=channel, definition=END_FLOW)

    # when: a contact writes; the flow answers and completes; the provider reports delivery
    inbound(client, "Hello", 1)
    reply = Message.objects.get(direction="outbound")
    status = twilio_params(
        "status_delivered",
        MessageSid=reply.provider_message_id,
        SmsSid=reply.provider_message_id,
        From=f"whatsapp:{NUMBER}",
    )
    assert post_twilio(client, status, token="chan-token").status_code == 200

    # then: flow.completed with its id and version, then "sent" and "delivered"
    bodies = [body_of(c) for c in sent(http)]
    assert [b["event"] for b in bodies] == ["flow.completed", "message.status", "message.status"]
    completed = bodies[0]["data"]
    assert (completed["flow_id"], completed["version"], completed["flow"]) == (
        "greeting",
        1,
        str(flow.pk),
    )
    assert completed["handed_off"] is False
    assert [b["data"]["message"]["status"] for b in bodies[1:]] == ["sent", "delivered"]
    assert bodies[2]["data"]["message"]["id"] == str(reply.pk)
    assert bodies[2]["data"]["message"]["error_code"] == ""

    # and a handoff node says why
    other = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000002")
    flow_create(tenant=tenant, channel=other, definition=HANDOFF_FLOW)
    params = twilio_params("inbound_text", Body="Hi", To="whatsapp:+15550000002")
    params["MessageSid"] = params["SmsSid"] = params["SmsMessageSid"] = "SMhandoff"
    assert post_twilio(client, params, token="chan-token").status_code == 200
    handoffs = [body_of(c) for c in sent(http) if body_of(c)["event"] == "thread.handoff"]
    assert [(h["data"]["reason"], h["data"]["by"]) for h in handoffs] == [("asked", "flow")]


# --- The signature -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_signature_verifies_with_a_receiver_written_from_the_readme(tenant, http):
    # given
    endpoint, secret = webhook_endpoint_create(
        tenant=tenant, url=HOOK_URL, events=["contact.opted_out"]
    )
    http.add(responses.POST, PINNED_URL, status=204)
    contact = factories.ThreadFactory(channel=factories.TwilioChannelFactory(tenant=tenant)).contact

    # when
    before = int(time.time())
    assert event_publish(
        tenant_id=tenant.pk, event="contact.opted_out", data={"contact_id": str(contact.pk)}
    )
    delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)

    # then: the header has the documented shape, and both receivers accept it
    (call,) = sent(http)
    header = call.request.headers["X-Chatai-Signature"]
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert match and before <= int(match.group(1)) <= time.time()
    body = call.request.body
    assert verify(secret, header, body, now=time.time())
    readme_verify = readme_verifier()
    assert readme_verify(secret, header, body)
    # and refuse a changed body, another secret, or the same request replayed an hour later
    assert not verify(secret, header, body.replace(b"opted_out", b"opted_in"), now=time.time())
    assert not readme_verify(secret, header, body + b" ")
    assert not readme_verify(secret.upper(), header, body)
    assert not verify(secret, header, body, now=time.time() + 3600)
    assert not readme_verify(secret, header.replace("t=", "t=1"), body)
    # and the secret is encrypted at rest and never in the body
    raw = WebhookEndpoint.objects.filter(pk=endpoint.pk).values_list("secret", flat=True)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret FROM integrations_webhookendpoint WHERE id = %s",
            [endpoint.pk.hex if connection.vendor == "sqlite" else endpoint.pk],
        )
        stored = cursor.fetchone()[0]
    assert secret not in stored and list(raw) == [secret]
    assert secret.encode() not in body


# --- Retries, backoff, give-up and switch-off -----------------------------------------------


@pytest.mark.django_db
def test_failures_are_retried_with_exponential_backoff_for_24_hours_then_switched_off(
    tenant, http, clock
):
    # given: a receiver that always answers 500
    endpoint, _ = webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["thread.closed"])
    http.add(responses.POST, PINNED_URL, status=500, body="x" * 5000)
    start = clock.now
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={"thread": {"id": "t"}})
    delivery = WebhookDelivery.objects.get()

    # when: every due attempt is made, and nothing before it is due
    made = []
    while True:
        delivery.refresh_from_db()
        if delivery.status != DeliveryStatus.PENDING:
            break
        clock.now = delivery.next_attempt_at - timedelta(seconds=1)
        if made:
            assert deliveries_due_send() == {}
        clock.now = delivery.next_attempt_at
        assert set(deliveries_due_send()) <= {"retry", "failed"}
        made.append(int((clock.now - start).total_seconds()))

    # then: 1, 2, 4, ... minutes apart, at most 2 hours, the last at the 24-hour mark
    assert made == [
        0, 60, 180, 420, 900, 1860, 3780, 7620, 14820, 22020, 29220, 36420, 43620,
        50820, 58020, 65220, 72420, 79620, 86400,
    ]  # fmt: skip
    assert len(sent(http)) == 19
    assert delivery.status == DeliveryStatus.FAILED
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.number for a in attempts] == list(range(1, 20))
    assert {(a.status_code, a.error, a.succeeded) for a in attempts} == {
        (500, "http_status", False)
    }
    assert all(len(a.response_snippet) == 200 for a in attempts)
    # and having failed for a whole day, the endpoint is switched off, saying why
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.health == "switched off"
    assert endpoint.disabled_at == clock.now
    assert "24 hours" in endpoint.disabled_reason and "HTTP 500" in endpoint.disabled_reason
    # and gets no new events
    assert event_publish(tenant_id=tenant.pk, event="thread.closed", data={}) == 0


@pytest.mark.django_db
def test_a_success_in_between_starts_the_day_again(tenant, http, clock):
    endpoint, _ = webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["thread.closed"])
    answers = iter([500, 200, 503])
    http.add_callback(responses.POST, PINNED_URL, callback=lambda r: (next(answers), {}, ""))
    for _ in range(3):
        known = set(WebhookDelivery.objects.values_list("pk", flat=True))
        event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
        (new,) = WebhookDelivery.objects.exclude(pk__in=known)
        delivery_attempt(delivery_id=new.pk)
        clock.advance(hours=13)
    endpoint.refresh_from_db()
    # failed at 0 h, succeeded at 13 h, failed at 26 h: failing since 26 h, not 0 h
    assert endpoint.is_active and endpoint.health == "failing"
    assert endpoint.failing_since == clock.now - timedelta(hours=13)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (ConnectionError("refused"), "connection"),
        (responses.ConnectionError("refused"), "connection"),
        (__import__("requests").ReadTimeout("slow"), "timeout"),
        (__import__("requests").ConnectTimeout("slow"), "timeout"),
        (__import__("requests").exceptions.SSLError("bad cert"), "tls"),
    ],
)
def test_network_errors_are_failed_attempts_with_their_class(tenant, http, answer, error):
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["thread.closed"])
    http.add(responses.POST, PINNED_URL, body=answer)
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
    assert deliveries_due_send() == {"retry": 1}
    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.error, attempt.succeeded) == (None, error, False)


@pytest.mark.django_db
def test_short_timeouts_no_redirects_one_session(tenant, http, monkeypatch):
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["thread.closed"])
    http.add(responses.POST, PINNED_URL, status=200)
    seen = []
    original = services._http().send

    def spy(request, **kwargs):
        seen.append(kwargs)
        return original(request, **kwargs)

    monkeypatch.setattr(services._http(), "send", spy)
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
    deliveries_due_send()
    assert [(k["timeout"], k["allow_redirects"]) for k in seen] == [((5.0, 10.0), False)] * 2
    assert services._http() is services._http()


@pytest.mark.django_db
def test_two_workers_never_make_the_same_attempt(tenant, http):
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["thread.closed"])
    http.add(responses.POST, PINNED_URL, status=200)
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
    delivery = WebhookDelivery.objects.get()
    # the task after commit and the periodic job reach the same due delivery
    assert delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    assert delivery_attempt(delivery_id=delivery.pk) == "skipped"
    assert deliveries_due_send() == {}
    assert len(sent(http)) == 1 and WebhookAttempt.objects.count() == 1


@pytest.mark.django_db
def test_the_pipeline_never_fails_because_of_webhooks(client, tenant, monkeypatch, caplog):
    # given: an endpoint, and a database that refuses delivery rows
    factories.TwilioChannelFactory(tenant=tenant, phone_number=NUMBER)
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["message.received"])

    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(WebhookDelivery.objects, "bulk_create", broken)
    # when
    with caplog.at_level(logging.ERROR, logger="integrations.services"):
        inbound(client, "Hello there", 1)
    # then: the message is stored and processed; the failure is logged by its type only
    assert Message.objects.filter(direction="inbound").count() == 1
    records = [r for r in caplog.records if r.name == "integrations.services" and r.levelno >= 40]
    assert {(r.getMessage(), r.error, r.event) for r in records} == {
        ("webhook event not recorded", "DatabaseError", "message.received")
    }


# --- Replay -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_replay_sends_the_same_event_again_with_a_new_attempt(tenant, http, api_client, member):
    endpoint, secret = webhook_endpoint_create(
        tenant=tenant, url=HOOK_URL, events=["thread.closed"]
    )
    answers = iter([500, 200])
    http.add_callback(responses.POST, PINNED_URL, callback=lambda r: (next(answers), {}, "ok"))
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={"thread": {"id": "t1"}})
    delivery = WebhookDelivery.objects.get()
    assert delivery_attempt(delivery_id=delivery.pk) == "retry"

    api_client.force_login(member(tenant, "owner"))
    url = reverse(
        "webhook-delivery-replay",
        kwargs={"tenant": tenant.pk, "webhook": endpoint.pk, "delivery": delivery.pk},
    )
    response = api_client.post(url)
    assert response.status_code == 202
    # in the test transaction the after-commit send has not run: run the replay's attempt
    assert delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    first, second = (body_of(c) for c in sent(http))
    assert first == second  # the same event, the same id
    again = sent(http)[1].request
    assert verify(secret, again.headers["X-Chatai-Signature"], again.body, time.time())
    listed = api_client.get(
        reverse("webhook-delivery-list", kwargs={"tenant": tenant.pk, "webhook": endpoint.pk})
    ).json()["results"]
    assert [a["number"] for a in listed[0]["attempts"]] == [1, 2]
    assert [a["status_code"] for a in listed[0]["attempts"]] == [500, 200]
    assert listed[0]["status"] == "succeeded"


@pytest.mark.django_db
def test_replay_on_a_switched_off_endpoint_is_a_409(tenant, staff_client):
    endpoint, delivery = factories.webhook_with_delivery(tenant, is_active=False)
    url = reverse(
        "webhook-delivery-replay",
        kwargs={"tenant": tenant.pk, "webhook": endpoint.pk, "delivery": delivery.pk},
    )
    response = staff_client.post(url)
    assert response.status_code == 409
    assert "switched off" in error_of(response)["message"]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED


# --- The API ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_secret_is_shown_once_and_rotating_replaces_it(tenant, http):
    client = key_client(tenant)
    url = reverse("webhook-list", kwargs={"tenant": tenant.pk})
    response = client.post(
        url, {"url": HOOK_URL, "events": ["thread.closed", "message.received"]}, format="json"
    )
    assert response.status_code == 201
    created = response.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) == 49
    assert created["events"] == ["message.received", "thread.closed"]  # canonical order
    assert (created["is_active"], created["health"]) == (True, "new")
    detail = reverse("webhook-detail", kwargs={"tenant": tenant.pk, "webhook": created["id"]})
    assert "secret" not in client.get(detail).json()
    assert "secret" not in client.get(url).json()["results"][0]
    assert created["secret"] not in client.get(url).content.decode()

    rotate = reverse(
        "webhook-rotate-secret", kwargs={"tenant": tenant.pk, "webhook": created["id"]}
    )
    new_secret = client.post(rotate).json()["secret"]
    assert new_secret != created["secret"]
    # deliveries from now on are signed with the new secret
    http.add(responses.POST, PINNED_URL, status=200)
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
    deliveries_due_send()
    (call,) = sent(http)
    header, body = call.request.headers["X-Chatai-Signature"], call.request.body
    assert verify(new_secret, header, body, time.time())
    assert not verify(created["secret"], header, body, time.time())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"url": "http://hooks.example.com/x", "events": ["thread.closed"]}, "url"),
        ({"url": "ftp://hooks.example.com/x", "events": ["thread.closed"]}, "url"),
        ({"url": "https://10.0.0.5/x", "events": ["thread.closed"]}, "url"),
        ({"url": "https://127.0.0.1:8000/admin/", "events": ["thread.closed"]}, "url"),
        ({"url": "https://[::1]/x", "events": ["thread.closed"]}, "url"),
        ({"url": "https://[::ffff:127.0.0.1]/x", "events": ["thread.closed"]}, "url"),
        ({"url": "https://169.254.169.254/latest/meta-data/", "events": ["thread.closed"]}, "url"),
        ({"url": "https://internal.example.com/x", "events": ["thread.closed"]}, "url"),
        ({"url": "https://mixed.example.com/x", "events": ["thread.closed"]}, "url"),
        ({"url": "https://nowhere.invalid/x", "events": ["thread.closed"]}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x", "events": ["thread.closed"]}, "url"),
        ({"url": HOOK_URL, "events": []}, "events"),
        ({"url": HOOK_URL, "events": ["message.deleted"]}, "events.0"),
        ({"url": HOOK_URL, "events": "thread.closed"}, "events"),
        ({"url": HOOK_URL, "events": ["thread.closed"], "is_active": "yes"}, "is_active"),
        ({"events": ["thread.closed"]}, "url"),
    ],
)
def test_bad_registrations_are_400_naming_the_field(tenant, staff_client, dns, body, path):
    dns.table["internal.example.com"] = ["10.1.2.3"]
    dns.table["mixed.example.com"] = [PUBLIC_IP, "192.168.1.10"]
    response = staff_client.post(
        reverse("webhook-list", kwargs={"tenant": tenant.pk}), body, format="json"
    )
    assert response.status_code == 400
    assert path in [d["path"] for d in error_of(response)["details"]]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_patch_switches_a_switched_off_endpoint_on_with_a_fresh_day(tenant, staff_client, clock):
    endpoint = factories.WebhookEndpointFactory(
        tenant=tenant,
        is_active=False,
        disabled_at=clock.now,
        disabled_reason="Switched off: …",
        failing_since=clock.now - timedelta(days=1),
    )
    url = reverse("webhook-detail", kwargs={"tenant": tenant.pk, "webhook": endpoint.pk})
    assert staff_client.get(url).json()["health"] == "switched off"
    response = staff_client.patch(url, {"is_active": True}, format="json")
    assert response.status_code == 200
    assert response.json()["health"] == "new"
    endpoint.refresh_from_db()
    assert (endpoint.disabled_at, endpoint.disabled_reason, endpoint.failing_since) == (
        None,
        "",
        None,
    )


@pytest.mark.django_db
def test_deliveries_list_has_a_fixed_query_count_and_no_secret(
    tenant, staff_client, django_assert_max_num_queries
):
    endpoint, _ = factories.webhook_with_delivery(tenant)
    for _ in range(5):
        factories.webhook_with_delivery(tenant)  # other endpoints' deliveries
    for n in range(2, 6):
        delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
        WebhookAttempt.objects.create(tenant=tenant, delivery=delivery, number=n, error="timeout")
    url = reverse("webhook-delivery-list", kwargs={"tenant": tenant.pk, "webhook": endpoint.pk})
    with django_assert_max_num_queries(8):
        response = staff_client.get(url)
    rows = response.json()["results"]
    assert len(rows) == 1 and [a["number"] for a in rows[0]["attempts"]] == [1, 2, 3, 4, 5]
    assert set(rows[0]["attempts"][0]) == {
        "number",
        "status_code",
        "error",
        "duration_ms",
        "response_snippet",
        "succeeded",
        "created_at",
    }
    assert endpoint.secret not in response.content.decode()
    assert "payload" not in rows[0] and "data" not in rows[0]


@pytest.mark.django_db
def test_another_tenants_endpoints_and_deliveries_are_404(tenant, other_tenant, member):
    mine, my_delivery = factories.webhook_with_delivery(tenant)
    theirs, their_delivery = factories.webhook_with_delivery(other_tenant)
    client = Client()
    client.force_login(member(tenant, "owner"))
    for name, kwargs in (
        ("webhook-detail", {"webhook": theirs.pk}),
        ("webhook-rotate-secret", {"webhook": theirs.pk}),
        ("webhook-delivery-list", {"webhook": theirs.pk}),
        ("webhook-delivery-detail", {"webhook": theirs.pk, "delivery": their_delivery.pk}),
        ("webhook-delivery-replay", {"webhook": theirs.pk, "delivery": their_delivery.pk}),
        # their delivery under my endpoint, my delivery under their endpoint
        ("webhook-delivery-detail", {"webhook": mine.pk, "delivery": their_delivery.pk}),
        ("webhook-delivery-replay", {"webhook": mine.pk, "delivery": their_delivery.pk}),
        ("webhook-delivery-detail", {"webhook": theirs.pk, "delivery": my_delivery.pk}),
    ):
        url = reverse(name, kwargs={"tenant": tenant.pk, **kwargs})
        method = "post" if name.endswith(("replay", "secret")) else "get"
        assert getattr(client, method)(url).status_code == 404, name
    listed = client.get(reverse("webhook-list", kwargs={"tenant": tenant.pk})).json()["results"]
    assert [row["id"] for row in listed] == [str(mine.pk)]


# --- The admin --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_creates_an_endpoint_and_shows_its_secret_once(tenant, member):
    client = Client()
    client.force_login(member(tenant, "owner"))
    response = client.post(
        reverse("admin:integrations_webhookendpoint_add"),
        {
            "tenant": tenant.pk,
            "url": HOOK_URL,
            "description": "CRM",
            "events": ["message.received", "contact.opted_out"],
            "is_active": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["message.received", "contact.opted_out"]
    assert endpoint.secret in response.content.decode()  # the message, once
    page = client.get(reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk]))
    assert endpoint.secret not in page.content.decode()
    # a private URL is refused by the form, naming the rule
    refused = client.post(
        reverse("admin:integrations_webhookendpoint_add"),
        {"tenant": tenant.pk, "url": "https://127.0.0.1/x", "events": ["message.received"]},
    )
    assert refused.status_code == 200
    assert "only public addresses" in refused.content.decode()
    assert WebhookEndpoint.objects.count() == 1


@pytest.mark.django_db
def test_the_admin_tells_the_owner_an_endpoint_was_switched_off(tenant, other_tenant, member):
    endpoint = factories.WebhookEndpointFactory(
        tenant=tenant,
        is_active=False,
        disabled_at="2026-12-01T12:00:00Z",
        disabled_reason="Switched off: every delivery failed for 24 hours (last: HTTP 500).",
    )
    factories.WebhookEndpointFactory(
        tenant=other_tenant, is_active=False, disabled_at="2026-12-01T12:00:00Z"
    )
    client = Client()
    client.force_login(member(tenant, "owner"))
    index = client.get(reverse("admin:index")).content.decode()
    assert "1 switched off" in index  # not the other tenant's
    changelist = client.get(reverse("admin:integrations_webhookendpoint_changelist"))
    assert "webhook-health-off" in changelist.content.decode()
    page = client.get(reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk]))
    assert "every delivery failed for 24 hours" in page.content.decode()
    # an agent of the tenant sees neither the notice nor the pages
    agent = Client()
    agent.force_login(member(tenant, "agent"))
    assert "switched off" not in agent.get(reverse("admin:index")).content.decode()


@pytest.mark.django_db
def test_the_admin_replays_deliveries(tenant, member):
    endpoint, delivery = factories.webhook_with_delivery(tenant)
    client = Client()
    client.force_login(member(tenant, "owner"))
    response = client.post(
        reverse("admin:integrations_webhookdelivery_changelist"),
        {"action": "replay", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert "1 delivery sent again." in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING


@pytest.mark.django_db
def test_erasing_a_contact_empties_the_webhook_bodies_about_them(client, tenant, http):
    # given: a message received and sent to an endpoint, and one still pending elsewhere
    from conversations.services.privacy import contact_erase

    factories.TwilioChannelFactory(tenant=tenant, phone_number=NUMBER)
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["message.received"])
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL + "/down", events=["message.received"])
    http.add(responses.POST, PINNED_URL, status=200)
    http.add(responses.POST, PINNED_URL + "/down", status=503)
    other_contact = factories.ThreadFactory(
        channel=factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550009999")
    ).contact
    event_publish(
        tenant_id=tenant.pk,
        event="contact.opted_in",
        data={"contact_id": str(other_contact.pk)},
    )  # nobody listens: no delivery
    inbound(client, "My secret plan", 1)
    contact = ChatThread.objects.get(channel__phone_number=NUMBER).contact
    assert {d.contact_id for d in WebhookDelivery.objects.all()} == {contact.pk}
    # when
    contact_erase(contact=contact)
    # then: no delivery holds the text any more; the pending one is given up
    deliveries = list(WebhookDelivery.objects.all())
    assert [d.payload for d in deliveries] == [{}, {}]
    assert {d.status for d in deliveries} == {"succeeded", "failed"}
    assert deliveries_due_send() == {}


@pytest.mark.django_db
def test_the_admin_changes_an_endpoint_and_switches_it_on_again(tenant, member, dns):
    endpoint = factories.WebhookEndpointFactory(
        tenant=tenant,
        is_active=False,
        disabled_at="2026-12-01T12:00:00Z",
        disabled_reason="Switched off: …",
        failing_since="2026-11-30T12:00:00Z",
    )
    client = Client()
    client.force_login(member(tenant, "owner"))
    url = reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk])
    response = client.post(
        url,
        {
            "url": f"https://{OTHER_HOST}/new",
            "description": "",
            "events": ["thread.closed"],
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.is_active) == (
        f"https://{OTHER_HOST}/new",
        ["thread.closed"],
        True,
    )
    assert (endpoint.disabled_at, endpoint.disabled_reason, endpoint.failing_since) == (
        None,
        "",
        None,
    )
    # and the new subscriptions take effect at once
    assert event_publish(tenant_id=tenant.pk, event="thread.closed", data={}) == 1
