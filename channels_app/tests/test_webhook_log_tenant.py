"""Log lines of webhooks and of the tasks they schedule carry the tenant once it is known.

Every record is formatted the way production formats it (ContextFilter + JsonFormatter), so
the assertions read the `tenant_id` of the real log lines.
"""

import json
import logging
from pathlib import Path

import pytest
import responses
from django.conf import settings

from conversations.models import ChatThread, Message
from conversations.tasks import process_thread
from core.context import tenant_id_var
from core.logging import ContextFilter, JsonFormatter
from flows.services import flow_create
from tests import factories

from .webhook_support import TWILIO_NUMBER, cloud_payload, post_cloud, post_twilio, twilio_params

pytestmark = pytest.mark.django_db

SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"
FITNESS = Path(settings.BASE_DIR) / "flows" / "examples" / "fitness-welcome.json"
PROJECT_LOGGERS = {"chatai", "core", "tenants", "channels_app", "conversations", "flows"}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def ours(self) -> list[dict]:
        """The project's own lines (Django's request log is written outside the request)."""
        return [line for line in self.lines if line["logger"].split(".")[0] in PROJECT_LOGGERS]

    def take(self) -> list[dict]:
        lines, self.lines = self.ours(), []
        return lines


@pytest.fixture
def log_lines():
    handler = _Lines()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def _messages(lines: list[dict]) -> list[str]:
    return [line["message"] for line in lines]


@pytest.fixture
def twilio_api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        sids = (f"SM{n:032x}" for n in range(1, 1000))
        mock.add_callback(
            responses.POST,
            TWILIO_URL,
            callback=lambda request: (201, {}, json.dumps({"sid": next(sids), "status": "queued"})),
        )
        yield mock


def test_twilio_webhook_lines_carry_the_channel_tenant(client, tenant, log_lines, twilio_api):
    # given: a Twilio channel with a flow that answers
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number=TWILIO_NUMBER)
    flow_create(tenant=tenant, channel=channel, definition=json.loads(FITNESS.read_text()))
    log_lines.take()

    # when: a message comes in (the processing and sending tasks run in-process)
    assert post_twilio(client, twilio_params("inbound_text"), token="chan-token").status_code == 200

    # then: storing, processing and sending all logged, every line with the tenant
    lines = log_lines.take()
    assert {"inbound message stored", "inbound messages processed", "message sent"} <= set(
        _messages(lines)
    )
    assert {line["tenant_id"] for line in lines} == {str(tenant.pk)}
    # and: the binding ended with the request
    assert tenant_id_var.get() is None


def test_lines_before_the_channel_is_known_carry_no_tenant(client, tenant, log_lines):
    factories.TwilioChannelFactory(tenant=tenant, phone_number=TWILIO_NUMBER)

    # a bad signature for a number nobody has
    params = twilio_params("inbound_text", To="whatsapp:+15559999999")
    assert post_twilio(client, params, token="chan-token", signature="forged").status_code == 403
    # a missing signature
    assert post_twilio(client, params, token="chan-token", signature="").status_code == 403
    # a Cloud API body that is not signed
    assert (
        post_cloud(client, cloud_payload("text", "999"), signature="sha256=00").status_code == 403
    )

    lines = log_lines.take()
    assert _messages(lines) == ["webhook refused"] * 3
    assert {line["tenant_id"] for line in lines} == {None}


def test_a_refused_signature_for_a_known_number_names_its_tenant(client, tenant, log_lines):
    # A tenant's wrong auth token shows up under that tenant.
    factories.TwilioChannelFactory(tenant=tenant, phone_number=TWILIO_NUMBER)
    params = twilio_params("inbound_text")
    assert post_twilio(client, params, token="chan-token", signature="forged").status_code == 403
    lines = log_lines.take()
    assert [(line["message"], line["tenant_id"]) for line in lines] == [
        ("webhook refused", str(tenant.pk))
    ]


def test_cloud_api_body_with_numbers_of_two_tenants_logs_each_item_under_its_own(
    client, tenant, other_tenant, log_lines, no_flow
):
    # given: one platform-signed body with items for a number of each tenant and an unknown one
    ours = factories.CloudChannelFactory(tenant=tenant)
    theirs = factories.CloudChannelFactory(tenant=other_tenant)
    payload = cloud_payload("text", ours.settings["phone_number_id"])
    for number_id in (theirs.settings["phone_number_id"], "999000999"):
        payload["entry"] += cloud_payload("text", number_id)["entry"]
    log_lines.take()

    # when
    assert post_cloud(client, payload).status_code == 200

    # then: each stored message and its processing logged under the channel's tenant
    lines = log_lines.take()
    tenant_of_channel = {str(ours.pk): str(tenant.pk), str(theirs.pk): str(other_tenant.pk)}
    tenant_of_thread = {
        str(pk): str(tenant_pk)
        for pk, tenant_pk in ChatThread.objects.values_list("pk", "tenant_id")
    }
    stored = [line for line in lines if line["message"] == "inbound message stored"]
    assert len(stored) == 2
    for line in lines:
        if "channel_id" in line:
            assert line["tenant_id"] == tenant_of_channel[line["channel_id"]], line
        if "thread_id" in line:
            assert line["tenant_id"] == tenant_of_thread[line["thread_id"]], line
    # and: the item for the unknown number logged with no tenant, after the others' items
    skipped = [line for line in lines if "unknown channel" in line["message"]]
    assert [line["tenant_id"] for line in skipped] == [None]
    assert lines.index(skipped[0]) > lines.index(stored[-1])
    assert tenant_id_var.get() is None


def test_the_processing_task_binds_the_thread_tenant_and_lets_go(
    client, tenant, log_lines, twilio_api
):
    # given: a stored, unprocessed message (its task "lost"), as a worker would find it
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number=TWILIO_NUMBER)
    flow_create(tenant=tenant, channel=channel, definition=json.loads(FITNESS.read_text()))
    thread = factories.ThreadFactory(channel=channel)
    factories.MessageFactory(thread=thread, text="hello")
    log_lines.take()

    # when: the task runs outside any request, without the tenant (queued by older code) and
    # with it
    for kwargs in ({}, {"tenant_id": str(tenant.pk)}):
        Message.objects.filter(thread=thread, direction="inbound").update(processed_at=None)
        process_thread.apply(args=[str(thread.pk)], kwargs=kwargs).get()

        # then: its lines carry the thread's tenant, and nothing stays bound afterwards
        lines = log_lines.take()
        assert "inbound messages processed" in _messages(lines)
        assert {line["tenant_id"] for line in lines} == {str(tenant.pk)}
        assert tenant_id_var.get() is None
