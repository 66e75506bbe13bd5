"""Replies leave in the order they were stored, whatever number of workers send them."""

import threading
import time

import pytest
from django.db import connection

from channels_app.providers import ParsedStatus, Provider, SendResult, override_provider
from conversations.models import Message, MessageStatus
from conversations.services.outbound import (
    message_status_update,
    replies_store,
    thread_deliver_queued,
)
from flows.services import Reply
from tests import factories


class SlowRecordingProvider(Provider):
    name = "recording"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._lock = threading.Lock()

    def send(self, *, channel, payload):
        # the first reply is slow at the provider: a second worker would overtake it
        time.sleep(0.3 if payload.text.endswith("0") else 0.01)
        with self._lock:
            self.sent.append(payload.text)
            return SendResult(provider_message_id=f"SM{len(self.sent)}")

    def fetch_media(self, *, channel, url, media_id):  # pragma: no cover - not used here
        raise NotImplementedError


@pytest.mark.django_db
def test_a_thread_sends_its_queued_replies_oldest_first():
    thread = factories.ThreadFactory()
    replies_store(thread=thread, replies=[Reply(text="first"), Reply(text="second")])
    replies_store(thread=thread, replies=[Reply(text="third")])
    provider = SlowRecordingProvider()
    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk)["sent"] == 3
        assert thread_deliver_queued(thread_id=thread.pk)["sent"] == 0
    assert provider.sent == ["first", "second", "third"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_keep_the_order_and_send_each_reply_once():
    # given a thread with replies to two inbound messages, queued in two batches
    thread = factories.ThreadFactory()
    texts = [f"reply {n}" for n in range(6)]
    replies_store(thread=thread, replies=[Reply(text=t) for t in texts[:3]])
    replies_store(thread=thread, replies=[Reply(text=t) for t in texts[3:]])
    provider = SlowRecordingProvider()
    barrier = threading.Barrier(4)
    errors: list[Exception] = []

    def worker() -> None:
        try:
            barrier.wait()
            thread_deliver_queued(thread_id=thread.pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    # when four workers send for the thread at once
    with override_provider(provider):
        workers = [threading.Thread(target=worker) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    # then every reply went out once, in the order stored
    assert not errors, errors
    assert provider.sent == texts
    assert set(Message.objects.filter(direction="outbound").values_list("status", flat=True)) == {
        MessageStatus.SENT
    }


class FixedIdProvider(SlowRecordingProvider):
    def send(self, *, channel, payload):
        self.sent.append(payload.text)
        return SendResult(provider_message_id="SMearly0001")


@pytest.mark.django_db
def test_a_status_that_overtakes_the_send_is_applied_once_the_id_is_recorded(
    django_capture_on_commit_callbacks,
):
    # given the provider's "delivered" callback arrives before we recorded its message id
    thread = factories.ThreadFactory()
    replies_store(thread=thread, replies=[Reply(text="hello")])
    early = ParsedStatus(provider_message_id="SMearly0001", status="delivered")
    assert message_status_update(channel=thread.channel, status=early) is None

    # when the send completes (the kept statuses are applied once the id is committed)
    with (
        override_provider(FixedIdProvider()),
        django_capture_on_commit_callbacks(execute=True),
    ):
        thread_deliver_queued(thread_id=thread.pk)

    # then the message is delivered, not stuck at sent
    message = Message.objects.get(direction="outbound")
    assert (message.provider_message_id, message.status) == ("SMearly0001", "delivered")
    assert message.delivered_at is not None


@pytest.mark.django_db
def test_a_status_kept_while_the_id_is_being_recorded_is_not_lost(monkeypatch):
    # given: a sent message whose provider id is committed right while its "delivered"
    # callback, which did not find it, is being kept (the sender has already looked for kept
    # statuses and found none)
    from conversations.services import outbound

    thread = factories.ThreadFactory()
    (message,) = replies_store(thread=thread, replies=[Reply(text="hello")])
    Message.objects.filter(pk=message.pk).update(status="sent")
    real_cache = outbound.cache

    class RecordedMeanwhile:
        def set(self, *args, **kwargs):
            Message.objects.filter(pk=message.pk).update(provider_message_id="SMlate0001")
            return real_cache.set(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(real_cache, name)

    monkeypatch.setattr(outbound, "cache", RecordedMeanwhile())

    # when
    status = ParsedStatus(provider_message_id="SMlate0001", status="delivered")
    applied = message_status_update(channel=thread.channel, status=status)

    # then: the second look found it and applied the status
    message.refresh_from_db()
    assert applied is not None and message.status == "delivered"


class WamidProvider(SlowRecordingProvider):
    def send(self, *, channel, payload):
        self.sent.append(payload.text)
        return SendResult(provider_message_id="wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0")


@pytest.mark.django_db
def test_an_early_status_for_a_whatsapp_id_is_applied_too(django_capture_on_commit_callbacks):
    # given: a Cloud API "read" arriving before its (pseudonymised when stored) id is recorded
    thread = factories.ThreadFactory()
    replies_store(thread=thread, replies=[Reply(text="hello")])
    wamid = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0"
    early = ParsedStatus(provider_message_id=wamid, status="read")
    assert message_status_update(channel=thread.channel, status=early) is None

    # when
    with (
        override_provider(WamidProvider()),
        django_capture_on_commit_callbacks(execute=True),
    ):
        thread_deliver_queued(thread_id=thread.pk)

    # then
    assert Message.objects.get(direction="outbound").status == "read"
