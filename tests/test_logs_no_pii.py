"""No PII in the logs: whole conversations, API calls and commands, every record captured.

Every logger is lowered to DEBUG for these tests (third-party ones included, except those the
settings deliberately keep at WARNING or above, which is asserted too), every record is
formatted with the project's JsonFormatter (exception text included), and none may contain a
test phone number, name, email or message text.
"""

import itertools
import json
import logging
from io import StringIO
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import responses
from django.conf import settings
from django.core.management import call_command

from channels_app.tests.webhook_support import (
    cloud_payload,
    hub_signature,
    post_cloud,
    post_twilio,
    twilio_params,
)
from conversations.models import ChatThread, Contact, Message
from core.logging import ContextFilter, JsonFormatter
from flows.services import flow_create
from tests import factories

FITNESS = Path(settings.BASE_DIR) / "flows" / "examples" / "fitness-welcome.json"
SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"

TWILIO_PHONE = "+5521987654321"
TWILIO_NAME = "Maria Silva"
CLOUD_PHONE = "16505551234"
CLOUD_NAME = "Sheena Nelson"
EMAIL = "maria.quokka@example.com"
TEXTS = [
    "Hello zebra quokka",
    "not an email xylophone",
    "hi from the cloud narwhal",
    "agent reply about pelicans",
    "second agent note axolotl",
]
PII = [
    TWILIO_PHONE,
    TWILIO_PHONE.lstrip("+"),
    TWILIO_NAME,
    CLOUD_PHONE,
    CLOUD_NAME,
    EMAIL,
    "Ana Souza",  # tenant owner (factories)
    *TEXTS,
]
# Third-party loggers that the settings keep quiet on purpose (they log request bodies).
QUIET_BY_SETTINGS = {"twilio.http_client", "httpx"}


class _Collector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs():
    collector = _Collector()
    root = logging.getLogger()
    saved = {"": root.level}
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name not in QUIET_BY_SETTINGS:
            saved[name] = logger.level
            logger.setLevel(logging.DEBUG)
    try:
        yield collector.lines
    finally:
        root.removeHandler(collector)
        for name, level in saved.items():
            logging.getLogger(name or None).setLevel(level)


def _assert_clean(lines):
    leaks = [(needle, line) for line in lines for needle in PII if needle in line]
    assert leaks == [], f"{len(leaks)} log lines contain PII, first: {leaks[:1]}"


def test_the_quiet_loggers_are_quiet_in_the_settings():
    configured = settings.LOGGING["loggers"]
    for name in QUIET_BY_SETTINGS:
        assert logging.getLevelName(configured[name]["level"]) >= logging.WARNING


class _Twilio:
    def __init__(self, fail_bodies=()):
        self.sids = (f"SM{n:032x}" for n in itertools.count(1))
        self.fail_bodies = set(fail_bodies)

    def __call__(self, request):
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        if form.get("Body") in self.fail_bodies:
            error = {
                "code": 21211,
                "message": f"The 'To' number {form.get('To')} is not a valid phone number.",
                "status": 400,
            }
            return 400, {}, json.dumps(error)
        return 201, {}, json.dumps({"sid": next(self.sids), "status": "queued"})


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_whole_conversations_api_and_commands_log_no_pii(
    client, staff_client, tenant, all_logs, tmp_path
):
    # given both providers with the fitness flow, and their APIs recorded
    twilio_channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    cloud_channel = factories.CloudChannelFactory(tenant=tenant)
    definition = json.loads(FITNESS.read_text())
    flow_create(tenant=tenant, channel=twilio_channel, definition=definition)
    flow_create(tenant=tenant, channel=cloud_channel, definition=definition)
    responses.add_callback(responses.POST, TWILIO_URL, callback=_Twilio(fail_bodies={TEXTS[4]}))
    number_id = cloud_channel.settings["phone_number_id"]
    wamids = (f"wamid.OUT{n:04d}" for n in itertools.count(1))
    responses.add_callback(
        responses.POST,
        f"https://graph.facebook.test/v22.0/{number_id}/messages",
        callback=lambda request: (200, {}, json.dumps({"messages": [{"id": next(wamids)}]})),
    )

    # when: a Twilio conversation through the whole flow
    for n, body in enumerate([TEXTS[0], "1", "2026-12-01", TEXTS[1], EMAIL]):
        params = twilio_params("inbound_text", Body=body, MessageSid=f"SMin{n:030d}")
        params["SmsSid"] = params["SmsMessageSid"] = params["MessageSid"]
        assert post_twilio(client, params, token="chan-token").status_code == 200
    # a duplicate, a bad signature, a status callback with an error
    assert post_twilio(client, params, token="chan-token").status_code == 200
    assert post_twilio(client, params, token="chan-token", signature="bad").status_code == 403
    status = twilio_params("status_undelivered", MessageSid="SM" + "0" * 31 + "1")
    assert post_twilio(client, status, token="chan-token").status_code == 200

    # and a Cloud API conversation, a tampered body and a non-JSON body
    for n, message in enumerate(
        [
            {"type": "text", "text": {"body": TEXTS[2]}},
            {
                "type": "interactive",
                "interactive": {
                    "type": "button_reply",
                    "button_reply": {"id": "prices", "title": "Membership prices"},
                },
            },
        ]
    ):
        payload = cloud_payload("text", number_id)
        payload["entry"][0]["changes"][0]["value"]["messages"] = [
            {"from": CLOUD_PHONE, "id": f"wamid.IN{n:04d}", "timestamp": "1749416383", **message}
        ]
        assert post_cloud(client, payload).status_code == 200
    assert post_cloud(client, payload, signature="sha256=" + "0" * 64).status_code == 403
    garbage = f'{{"broken": "{CLOUD_NAME}'.encode()
    assert (
        post_cloud(client, None, raw=garbage, signature=hub_signature(garbage)).status_code == 400
    )

    # and the API: lists, an agent message, one the provider refuses, export
    thread = ChatThread.objects.get(channel=twilio_channel)
    base = f"/api/tenants/{tenant.pk}"
    assert staff_client.get(f"{base}/threads/").status_code == 200
    assert staff_client.get(f"{base}/contacts/").status_code == 200
    assert staff_client.get(f"{base}/threads/{thread.pk}/messages/").status_code == 200
    for text in TEXTS[3:]:
        response = staff_client.post(
            f"{base}/threads/{thread.pk}/messages/", {"text": text}, format="json"
        )
        assert response.status_code == 201
    bad = staff_client.post(f"{base}/threads/{thread.pk}/messages/", {"text": ""}, format="json")
    assert bad.status_code == 400
    contact = Contact.objects.get(pk=thread.contact_id)
    assert staff_client.get(f"{base}/contacts/{contact.pk}/export/").status_code == 200

    # and the commands
    call_command("process_pending", stdout=StringIO())
    target = tmp_path / "export.json"
    call_command(
        "gdpr_export",
        "--tenant",
        str(tenant.pk),
        "--phone",
        TWILIO_PHONE,
        "--output",
        str(target),
        stderr=StringIO(),
    )
    call_command(
        "gdpr_erase", "--tenant", str(tenant.pk), "--phone", CLOUD_PHONE, stdout=StringIO()
    )
    call_command("rotate_pii_keys", stdout=StringIO())
    call_command("purge_deleted", "--older-than-days", "30", stdout=StringIO())

    # then the conversation really happened (the capture is not empty by accident)...
    assert Message.objects.filter(direction="outbound", status="sent").count() >= 8
    assert Message.objects.filter(error_code="21211").exists()
    assert EMAIL in target.read_text()
    loggers = {json.loads(line)["logger"] for line in all_logs}
    assert {
        "conversations.services.inbound",
        "conversations.services.outbound",
        "channels_app.webhooks",
        "conversations.services.privacy",
    } <= loggers
    assert len(all_logs) > 40
    # ... and not one log line carries personal data
    _assert_clean(all_logs)


@pytest.mark.django_db
def test_an_exception_inside_the_flow_logs_no_pii(client, tenant, all_logs, monkeypatch):
    # given a flow that blows up with the message text in the exception
    factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")

    def explode(*, thread, message, **_):
        raise RuntimeError(f"cannot handle {message.text!r}")

    monkeypatch.setattr("conversations.services.process.flow_handle_inbound", explode)

    # when
    response = post_twilio(client, twilio_params("inbound_text", Body=TEXTS[0]), token="chan-token")

    # then the failure is logged (with its traceback), but the traceback text is our risk:
    assert response.status_code == 200
    errors = [line for line in all_logs if json.loads(line)["level"] == "ERROR"]
    assert errors, "the flow failure must be logged"
    _assert_clean(all_logs)


@responses.activate
@pytest.mark.django_db
def test_identities_groups_kinds_and_echoes_log_no_pii(client, tenant, all_logs):
    # given a Cloud API and a Twilio channel with the fitness flow (replies go out), and the
    # peer payloads naming people by phone and by WhatsApp user id
    cloud_channel = factories.CloudChannelFactory(tenant=tenant)
    twilio_channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    definition = json.loads(FITNESS.read_text())
    flow_create(tenant=tenant, channel=cloud_channel, definition=definition)
    flow_create(tenant=tenant, channel=twilio_channel, definition=definition)
    number_id = cloud_channel.settings["phone_number_id"]
    wamids = (f"wamid.OUT{n:04d}" for n in itertools.count(1))
    responses.add_callback(
        responses.POST,
        f"https://graph.facebook.test/v22.0/{number_id}/messages",
        callback=lambda request: (200, {}, json.dumps({"messages": [{"id": next(wamids)}]})),
    )
    responses.add_callback(responses.POST, TWILIO_URL, callback=_Twilio())
    secrets = [
        "US.1234",
        "IN.2081978709342942",
        "919745786257",
        "255718573302",
        "14133881111",  # (courier's "5678" is left out: any uuid may contain those digits)
        "Kerry Fisher",
        "Muhsin",
        "Diana Digital",
        "fl0w+t0k3n",
        "Hello World",
        "testing bsuid",
        "echo reply",
        "555555555",
        "AfhcQdP2E4A8wWpeb1FqUzUi",
    ]

    # when
    for name in (
        "courier_hello_from_bsuid",
        "courier_hello_bsuid_in_from",
        "courier_group_message",
        "courier_nfm_reply",
        "courier_no_from",
        "chatwoot_bsuid_only",
        "chatwoot_phone_and_bsuid",
        "chatwoot_contacts_message",
        "chatwoot_referral_ctwa",
        "chatwoot_smb_message_echo",
        "chatwoot_system_user_changed_user_id",
    ):
        assert post_cloud(client, cloud_payload(f"peer/{name}", number_id)).status_code == 200
    for name in ("courier_waReceiveFromBSUID", "courier_waReceivePrefixlessURN"):
        post_twilio(client, twilio_params(f"peer/{name}"), token="chan-token")

    # then something happened, and no line names anyone
    assert Message.objects.filter(direction="inbound").exists()
    assert Message.objects.filter(sender="business").exists()
    leaks = [(needle, line) for line in all_logs for needle in secrets if needle in line]
    assert leaks == [], f"{len(leaks)} log lines contain PII, first: {leaks[:1]}"
    _assert_clean(all_logs)
