"""Faults: the database going away, Redis stopped, the broker down, a worker killed.

Each test breaks one dependency the way it breaks in production (a refused connection, an
exception at the insert, a task that never runs) and shows what the contract promises: a
clear status, nothing half-stored, and `process_pending` finishing the work exactly once.
"""

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
import responses
from django.db import OperationalError, connection
from django.test import override_settings
from django.utils import timezone

from channels_app.tests.webhook_support import (
    cloud_payload,
    post_cloud,
    post_twilio,
    twilio_params,
)
from conversations.models import ChatThread, Contact, Message, MessageStatus
from conversations.services.pending import pending_process
from conversations.tests.test_pending_process import TWILIO_URL, TwilioAPI
from flows.services import FlowRun, Reply
from tenants.api_keys import api_key_create
from tests import factories

DEAD_REDIS = "redis://127.0.0.1:6390/0"
LATER = timedelta(minutes=5)


@pytest.fixture
def channel(tenant):
    return factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")


@pytest.fixture
def echo_flow(monkeypatch):
    seen = []

    def handle(*, thread, message, **_):
        seen.append(message.pk)
        return FlowRun(replies=[Reply(text=f"echo {len(seen)}")])

    monkeypatch.setattr("conversations.services.process.flow_handle_inbound", handle)
    return seen


INBOUND_STORE_TABLES = (
    "conversations_message",
    "conversations_contact",
    "conversations_chatthread",
)


@contextmanager
def database_fails_at(table: str):
    """Every INSERT into `table` on this connection raises OperationalError, as when the
    server goes away mid-request. On PostgreSQL inbound messages, their contacts and threads
    are inserted by the function `conversations_inbound_store`, so calling it fails too."""

    def wrapper(execute, sql, params, many, context):
        inserts = sql.lstrip().upper().startswith("INSERT") and table in sql
        stores = "conversations_inbound_store(" in sql and table in INBOUND_STORE_TABLES
        if inserts or stores:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


# --- The database ------------------------------------------------------------------------------


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_database_gone_at_the_insert_answers_503_and_the_retry_stores_once(
    client, channel, echo_flow
):
    # given
    api = TwilioAPI().install()
    params = twilio_params("inbound_text", Body="hello there")

    # when the message insert fails
    with database_fails_at("conversations_message"):
        response = post_twilio(client, params, token="chan-token")

    # then a short 503, and nothing of the delivery was kept (not even its contact)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert response.json()["error"]["code"] == "unavailable"
    assert b"hello there" not in response.content
    assert Message.objects.count() == 0
    assert Contact.objects.count() == 0 and ChatThread.objects.count() == 0

    # when the provider retries, twice
    assert post_twilio(client, params, token="chan-token").status_code == 200
    assert post_twilio(client, params, token="chan-token").status_code == 200

    # then it is stored, processed and answered once
    assert Message.objects.filter(direction="inbound").count() == 1
    assert echo_flow and len(echo_flow) == 1
    assert api.bodies == ["echo 1"]


@pytest.mark.django_db(transaction=True)
def test_database_gone_during_a_cloud_api_post_answers_503(client, tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    payload = cloud_payload("text", channel.settings["phone_number_id"])

    with database_fails_at("conversations_message"):
        response = post_cloud(client, payload)

    assert response.status_code == 503
    assert Message.objects.count() == 0 and Contact.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_database_gone_before_anything_answers_503(client, channel):
    params = twilio_params("inbound_text")

    with database_fails_at("conversations_contact"):
        response = post_twilio(client, params, token="chan-token")

    assert response.status_code == 503
    assert Contact.objects.count() == 0


# --- Redis -------------------------------------------------------------------------------------

DEAD_REDIS_CACHES = {
    "default": {
        "BACKEND": "core.cache.FallbackCache",
        "LOCATION": DEAD_REDIS,
        "OPTIONS": {"PRIMARY": "redis", "FALLBACK": "local"},
    },
    "redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": DEAD_REDIS,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
    },
    "local": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "faults-fallback",
    },
}


@responses.activate
@pytest.mark.django_db(transaction=True)
@override_settings(CACHES=DEAD_REDIS_CACHES, REDIS_URL=DEAD_REDIS)
def test_redis_stopped_webhooks_lockout_and_api_keep_working(
    client, api_client, channel, echo_flow, django_user_model
):
    # given Redis is not listening at all
    TwilioAPI().install()

    # then a webhook is stored and answered
    assert post_twilio(client, twilio_params("inbound_text"), token="chan-token").status_code == 200
    assert Message.objects.filter(direction="outbound", status="sent").count() == 1

    # and the login lockout still counts failures (in the local fallback)
    django_user_model.objects.create_user(
        username="agent", password="right-pass-1234", is_staff=True
    )
    statuses = [
        api_client.post(
            "/api/controller/auth", {"username": "agent", "password": "wrong"}, format="json"
        ).status_code
        for _ in range(4)
    ]
    assert statuses[0] == 401
    assert statuses[-1] == 429

    # and the API answers with an API key
    _key, raw = api_key_create(tenant=channel.tenant, name="crm")
    response = api_client.get(
        f"/api/tenants/{channel.tenant_id}/threads/", HTTP_AUTHORIZATION=f"Api-Key {raw}"
    )
    assert response.status_code == 200
    assert response.json()["count"] == 1

    # and readiness reports the cache as degraded, not the service as down
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["cache"] == "degraded"


# --- The broker --------------------------------------------------------------------------------


@pytest.fixture
def dead_broker(settings):
    """CELERY_BROKER_URL points at a port nobody listens on; tasks really try to publish."""
    from chatai.celery import app

    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    settings.CELERY_BROKER_URL = DEAD_REDIS
    app.conf.update(broker_url=DEAD_REDIS, task_always_eager=False)
    try:
        yield
    finally:
        app.conf.update(**saved)
        settings.CELERY_BROKER_URL = ""
        app.pool.force_close_all()


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_broker_down_the_message_is_stored_then_finished_by_process_pending(
    client, channel, echo_flow, request
):
    # given the broker is down when the message arrives
    api = TwilioAPI().install()
    request.getfixturevalue("dead_broker")

    # when
    response = post_twilio(client, twilio_params("inbound_text"), token="chan-token")

    # then the webhook still answers 200 and the message is stored, not yet processed
    assert response.status_code == 200
    message = Message.objects.get(direction="inbound")
    assert message.processed_at is None
    assert echo_flow == []

    # when process_pending runs (after the grace period) while the broker is still down
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - LATER)
    report = pending_process()

    # then the message is processed; its reply is queued (its send task could not be queued)
    assert report.inbound_processed == 1
    reply = Message.objects.get(direction="outbound")
    assert reply.status == MessageStatus.QUEUED and api.bodies == []

    # when the next run comes, after the grace period
    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - LATER)
    again = pending_process()

    # then the reply is sent, once, and nothing is processed twice
    assert again.outbound_sent == 1 and again.inbound_processed == 0
    assert api.bodies == ["echo 1"]
    assert echo_flow == [message.pk]


# --- A worker killed between storing replies and sending them -----------------------------------


@pytest.fixture
def sends_lost(monkeypatch):
    """The worker dies after the replies are committed: their send tasks never run."""
    from core import tasks as core_tasks

    real = core_tasks.run_task
    lost = []

    def run_task(task, *args, **kwargs):
        if task.name == "conversations.tasks.send_thread":
            lost.append(args)
            return
        real(task, *args, **kwargs)

    monkeypatch.setattr(core_tasks, "run_task", run_task)
    return lost


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_worker_killed_before_sending_replies_are_sent_once(client, channel, echo_flow, sends_lost):
    # given a message whose replies were stored but whose sending died with the worker
    api = TwilioAPI().install()
    assert post_twilio(client, twilio_params("inbound_text"), token="chan-token").status_code == 200
    assert sends_lost and api.bodies == []
    reply = Message.objects.get(direction="outbound")
    assert reply.status == MessageStatus.QUEUED
    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - LATER)

    # when process_pending runs twice
    first = pending_process()
    second = pending_process()

    # then the reply went out exactly once
    assert (first.outbound_sent, second.outbound_sent) == (1, 0)
    assert api.bodies == ["echo 1"]
    assert Message.objects.get(pk=reply.pk).status == MessageStatus.SENT


@responses.activate
@pytest.mark.django_db(transaction=True)
def test_a_send_that_died_mid_request_is_not_repeated(channel):
    # given a reply whose worker died while talking to Twilio (claimed, never finished)
    api = TwilioAPI().install()
    thread = factories.ThreadFactory(channel=channel, last_inbound_at=timezone.now())
    stale = timezone.now() - timedelta(hours=1)
    reply = factories.MessageFactory(
        thread=thread,
        direction="outbound",
        sender="flow",
        status="queued",
        text="maybe sent",
        send_attempts=1,
        sending_since=stale,
    )
    Message.objects.filter(pk=reply.pk).update(updated_at=timezone.now() - LATER)

    # when
    report = pending_process()

    # then it is failed as unconfirmed rather than risking a duplicate
    assert report.outbound_failed == 1 and api.bodies == []
    assert Message.objects.get(pk=reply.pk).error_code == "send_unconfirmed"


@pytest.mark.postgres
@responses.activate
@pytest.mark.django_db(transaction=True)
def test_concurrent_process_pending_runs_send_each_reply_once(channel, echo_flow):
    # given ten stuck replies on five threads, and five stale inbound messages
    api = TwilioAPI().install()
    for n in range(5):
        thread = factories.ThreadFactory(channel=channel, last_inbound_at=timezone.now())
        factories.MessageFactory(thread=thread, text=f"in {n}")
        for k in range(2):
            factories.MessageFactory(
                thread=thread,
                direction="outbound",
                sender="flow",
                status="queued",
                text=f"out {n}.{k}",
            )
    old = timezone.now() - LATER
    Message.objects.update(created_at=old, updated_at=old)

    # when four runs race
    from django.db import connections

    errors = []

    def run():
        try:
            pending_process()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    # then every message was handled exactly once
    assert errors == []
    assert len(echo_flow) == 5 and len(set(echo_flow)) == 5
    sent = [body for body in api.bodies if body.startswith("out")]
    assert sorted(sent) == sorted(f"out {n}.{k}" for n in range(5) for k in range(2))
    echoes = [body for body in api.bodies if body.startswith("echo")]
    assert len(echoes) == 5
    assert TWILIO_URL
