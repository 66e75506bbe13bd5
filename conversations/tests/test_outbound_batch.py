"""#16 item 2: a thread's replies are claimed and recorded per batch, and a message the
provider may have accepted is still never sent twice."""

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.providers import (
    AmbiguousSendError,
    PermanentSendError,
    Provider,
    SendResult,
    TransientSendError,
    override_provider,
)
from conversations.models import Message, MessageStatus
from conversations.services.outbound import (
    SEND_BATCH,
    TransientDeliveryError,
    replies_store,
    thread_deliver_queued,
)
from flows.services import Reply
from tests import factories

pytestmark = pytest.mark.django_db


class ScriptedProvider(Provider):
    """Answers each text as scripted: an exception to raise, or else a new provider id.
    Records, for every send, what the database said of the thread's messages then."""

    name = "scripted"

    def __init__(self, script=None) -> None:
        self.script = script or {}
        self.sent: list[str] = []
        self.in_flight_seen: list[int] = []

    def send(self, *, channel, payload):
        self.in_flight_seen.append(Message.objects.filter(sending_since__isnull=False).count())
        answer = self.script.get(payload.text)
        if isinstance(answer, BaseException):
            raise answer
        self.sent.append(payload.text)
        return SendResult(provider_message_id=answer or f"SM-{payload.text}")

    def fetch_media(self, *, channel, url, media_id):  # pragma: no cover - not used here
        raise NotImplementedError


def _queue(thread, *texts):
    return replies_store(thread=thread, replies=[Reply(text=text) for text in texts])


def _state(message):
    message.refresh_from_db()
    return message.status, message.send_attempts, message.sending_since, message.error_code


def test_a_batch_is_claimed_before_its_first_send_and_recorded_together():
    # given
    thread = factories.ThreadFactory()
    one, two = _queue(thread, "one", "two")
    provider = ScriptedProvider()

    # when
    with override_provider(provider), CaptureQueriesContext(connection) as queries:
        outcomes = thread_deliver_queued(thread_id=thread.pk)

    # then: both were in flight before the first call, and both are recorded as sent
    assert outcomes["sent"] == 2 and provider.sent == ["one", "two"]
    assert provider.in_flight_seen == [2, 2]
    assert [_state(message)[:3] for message in (one, two)] == [("sent", 1, None)] * 2
    assert [m.provider_message_id for m in (one, two)] == ["SM-one", "SM-two"]
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(writes) == 2, writes  # one claim, one record


def test_more_replies_than_a_batch_go_out_in_order_in_several_batches():
    thread = factories.ThreadFactory()
    texts = [f"reply {n:02d}" for n in range(SEND_BATCH * 2 + 3)]
    _queue(thread, *texts)
    provider = ScriptedProvider()

    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk)["sent"] == len(texts)

    assert provider.sent == texts
    assert max(provider.in_flight_seen) == SEND_BATCH  # never more claimed at once
    assert not Message.objects.filter(status=MessageStatus.QUEUED).exists()


def test_a_transient_refusal_stops_the_batch_and_gives_back_the_later_claims():
    # given: the provider cannot take the second reply now
    thread = factories.ThreadFactory()
    one, two, three = _queue(thread, "one", "two", "three")
    provider = ScriptedProvider({"two": TransientSendError("busy", code="429")})

    # when
    with override_provider(provider), pytest.raises(TransientDeliveryError) as raised:
        thread_deliver_queued(thread_id=thread.pk)

    # then: the first went out, the second waits with its attempt counted, the third was
    # never tried and is as it was before the claim
    assert raised.value.message_id == two.pk and raised.value.code == "429"
    assert provider.sent == ["one"]
    assert _state(one)[:3] == ("sent", 1, None)
    assert _state(two) == ("queued", 1, None, "429")
    assert _state(three) == ("queued", 0, None, "")

    # and the retry sends both, in order
    provider.script = {}
    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk)["sent"] == 2
    assert provider.sent == ["one", "two", "three"]
    assert _state(two)[:2] == ("sent", 2)


def test_a_refusal_or_a_lost_answer_fails_that_reply_and_the_batch_goes_on():
    thread = factories.ThreadFactory()
    one, two, three, four = _queue(thread, "one", "two", "three", "four")
    provider = ScriptedProvider(
        {
            "two": PermanentSendError("invalid recipient", code="21211"),
            "three": AmbiguousSendError("read timeout", code="timeout"),
        }
    )

    with override_provider(provider):
        outcomes = thread_deliver_queued(thread_id=thread.pk)

    assert outcomes == {"sent": 2, "failed": 2}
    assert provider.sent == ["one", "four"]
    assert _state(two) == ("failed", 1, None, "21211")
    assert _state(three) == ("failed", 1, None, "send_unconfirmed")
    assert [_state(m)[0] for m in (one, four)] == ["sent", "sent"]


def test_a_worker_that_dies_mid_batch_sends_none_of_it_again():
    # given: the worker dies while the provider handles the first reply (it may have taken it)
    thread = factories.ThreadFactory()
    one, two = _queue(thread, "one", "two")
    provider = ScriptedProvider({"one": SystemExit("worker killed")})
    with override_provider(provider), pytest.raises(SystemExit):
        thread_deliver_queued(thread_id=thread.pk)
    assert [_state(m)[0] for m in (one, two)] == ["queued", "queued"]

    # when: another worker looks at the thread before and after the attempt goes stale
    provider.script = {}
    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk)["skipped"] == 2
        Message.objects.update(sending_since=timezone.now() - timedelta(hours=1))
        assert thread_deliver_queued(thread_id=thread.pk)["failed"] == 2

    # then: neither is sent again; both say why
    assert provider.sent == []
    assert [_state(m)[3] for m in (one, two)] == ["send_unconfirmed"] * 2


def test_a_provider_id_already_held_fails_no_other_reply_of_the_batch():
    # given: the provider answers the second reply with an id another message holds
    thread = factories.ThreadFactory()
    factories.MessageFactory(
        thread=thread, direction="outbound", sender="flow", status="sent",
        provider_message_id="SM-taken",
    )  # fmt: skip
    one, two = _queue(thread, "one", "two")
    provider = ScriptedProvider({"two": "SM-taken"})

    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk)["sent"] == 2

    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.status, one.provider_message_id) == ("sent", "SM-one")
    assert (two.status, two.provider_message_id) == ("sent", None)
    assert two.metadata["provider_id_conflict"] == "SM-taken"
    assert two.sending_since is None


def test_a_rate_limited_reply_waits_and_so_do_the_later_ones():
    # given: the second reply was put back by a rate-limit callback, not to go before a time
    thread = factories.ThreadFactory()
    one, two, three = _queue(thread, "one", "two", "three")
    later = (timezone.now() + timedelta(minutes=5)).isoformat()
    Message.objects.filter(pk=two.pk).update(metadata={"retry_after": later}, error_code="130429")
    provider = ScriptedProvider()

    # when
    with override_provider(provider), pytest.raises(TransientDeliveryError):
        thread_deliver_queued(thread_id=thread.pk)

    # then: the first went out; the others keep their place, unclaimed
    assert provider.sent == ["one"]
    assert _state(two) == ("queued", 0, None, "130429")
    assert _state(three) == ("queued", 0, None, "")

    # and once the wait is over, both go, the wait forgotten
    past = (timezone.now() - timedelta(seconds=1)).isoformat()
    Message.objects.filter(pk=two.pk).update(metadata={"retry_after": past})
    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk)["sent"] == 2
    assert provider.sent == ["one", "two", "three"]
    two.refresh_from_db()
    assert "retry_after" not in two.metadata


def test_an_in_flight_mark_from_before_the_upgrade_is_kept():
    from importlib import import_module

    from django.db.migrations.executor import MigrationExecutor

    migration = import_module("conversations.migrations.0012_message_sending_since")
    state = MigrationExecutor(connection).loader.project_state(
        ("conversations", "0012_message_sending_since")
    )
    thread = factories.ThreadFactory()
    (message,) = _queue(thread, "one")
    since = timezone.now() - timedelta(minutes=3)
    Message.objects.filter(pk=message.pk).update(
        metadata={"sending_since": since.isoformat(), "choices": []}
    )
    (garbled,) = _queue(thread, "two")
    Message.objects.filter(pk=garbled.pk).update(metadata={"sending_since": "2026-13-45T99"})
    (naive,) = _queue(thread, "three")
    Message.objects.filter(pk=naive.pk).update(metadata={"sending_since": "2026-12-03T10:00:00"})

    migration.in_flight_to_column(state.apps, None)

    for row in (message, garbled, naive):
        row.refresh_from_db()
    assert (message.sending_since, message.metadata) == (since, {"choices": []})
    assert garbled.sending_since == migration.LONG_AGO and garbled.metadata == {}
    assert naive.sending_since.isoformat() == "2026-12-03T10:00:00+00:00"
    # and none of them is sent: in flight, or long gone and failed as unconfirmed
    provider = ScriptedProvider()
    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk) == {"skipped": 1, "failed": 2}
    assert provider.sent == []


def test_a_mark_left_in_metadata_by_a_worker_of_the_earlier_release_is_honoured():
    # given: a worker still running the code before the upgrade claimed the message
    thread = factories.ThreadFactory()
    (message,) = _queue(thread, "one")
    Message.objects.filter(pk=message.pk).update(
        metadata={"sending_since": timezone.now().isoformat()}, send_attempts=1
    )
    provider = ScriptedProvider()

    # when / then: not sent a second time
    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk) == {"skipped": 1}
    assert provider.sent == []


def test_a_refusal_saying_the_contact_unsubscribed_stops_the_batch_for_automated_replies():
    # given: Twilio refuses the first reply, the contact having unsubscribed (21610), and an
    # agent's message is queued behind two automated replies
    thread = factories.ThreadFactory()
    one, two = _queue(thread, "one", "two")
    agent = replies_store(thread=thread, replies=[Reply(text="agent", sender="agent")])[0]
    provider = ScriptedProvider({"one": PermanentSendError("unsubscribed", code="21610")})

    # when
    with override_provider(provider):
        outcomes = thread_deliver_queued(thread_id=thread.pk)

    # then: the contact is opted out, the automated reply behind it is never sent, the
    # agent's message is (a person wrote it, as an agent may to an opted-out contact)
    thread.contact.refresh_from_db()
    assert thread.contact.is_opted_out
    assert provider.sent == ["agent"]
    assert outcomes == {"failed": 2, "sent": 1}
    assert _state(one)[::3] == ("failed", "21610")
    assert _state(two) == ("failed", 0, None, "opted_out")
    assert _state(agent)[:3] == ("sent", 1, None)


@pytest.mark.django_db(transaction=True)  # as a worker runs it: no transaction around it
def test_a_failed_record_is_tried_again_and_nothing_is_lost(monkeypatch):
    # given: the database fails the first try at recording the batch (e.g. a deadlock)
    from django.db import OperationalError

    from conversations.services import outbound

    thread = factories.ThreadFactory()
    with monkeypatch.context() as queue_only:  # no send task when queued: sent below
        queue_only.setattr(outbound, "_schedule_send", lambda thread: None)
        one, two = _queue(thread, "one", "two")
    provider = ScriptedProvider()
    real = outbound._record_sent
    failures = [OperationalError("deadlock detected")]

    def flaky(sent, *, one_by_one):
        real(sent, one_by_one=one_by_one)
        if failures:
            raise failures.pop()

    monkeypatch.setattr(outbound, "_record_sent", flaky)

    # when
    with override_provider(provider):
        outcomes = thread_deliver_queued(thread_id=thread.pk)

    assert not failures
    # then: recorded once, as sent, with the provider's ids
    assert outcomes == {"sent": 2} and provider.sent == ["one", "two"]
    assert [_state(m)[:3] for m in (one, two)] == [("sent", 1, None)] * 2
    assert [m.provider_message_id for m in (one, two)] == ["SM-one", "SM-two"]


class GatedProvider(ScriptedProvider):
    """Holds the first send until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.go = threading.Event()

    def send(self, *, channel, payload):
        if not self.entered.is_set():
            self.entered.set()
            assert self.go.wait(10)
        self.sent.append(payload.text)
        return SendResult(provider_message_id=f"SM-{payload.text}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_erasure_waits_for_the_batch_being_sent_and_no_reply_goes_out_after_it():
    # given: a batch of two replies, its first send held at the provider
    from conversations.services.privacy import contact_erase

    thread = factories.ThreadFactory()
    provider = GatedProvider()
    with override_provider(provider):
        with monkeypatch_schedule_off():
            one, two = _queue(thread, "one", "two")
        sender = threading.Thread(target=_in_thread(thread_deliver_queued, thread_id=thread.pk))
        sender.start()
        assert provider.entered.wait(10)

        # when: the contact is erased meanwhile
        eraser = threading.Thread(target=_in_thread(contact_erase, contact=thread.contact))
        eraser.start()
        eraser.join(0.5)

        # then: the erasure waits for the batch, which is sent and recorded whole first
        assert eraser.is_alive()
        provider.go.set()
        sender.join(10)
        eraser.join(10)
    assert provider.sent == ["one", "two"]
    for message in (one, two):
        message.refresh_from_db()
        assert (message.status, message.provider_message_id, message.text) == (
            "sent",
            f"SM-{'one' if message.pk == one.pk else 'two'}",
            "",
        )
    thread.contact.refresh_from_db()
    assert thread.contact.erased_at is not None


def _in_thread(function, **kwargs):
    def run():
        try:
            function(**kwargs)
        finally:
            connection.close()

    return run


@contextmanager
def monkeypatch_schedule_off():
    """Queue without the send task that would run right away (no transaction to wait for)."""
    from conversations.services import outbound

    real = outbound._schedule_send
    outbound._schedule_send = lambda thread: None
    try:
        yield
    finally:
        outbound._schedule_send = real


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_erasure_that_cannot_wait_for_a_long_send_changes_nothing_and_says_so(monkeypatch):
    # given: a sender holding the thread's lock (its provider does not answer)
    from io import StringIO

    from django.core.management import CommandError, call_command
    from django.urls import reverse

    from conversations.services import privacy
    from core import locks
    from tests.api_helpers import error_of, key_client

    monkeypatch.setattr(privacy, "SENDERS_WAIT_SECONDS", 1)
    thread = factories.ThreadFactory()
    factories.MessageFactory(thread=thread, text="my address is 1 Main St")
    holding, release = threading.Event(), threading.Event()

    def sender():
        with locks.try_advisory_lock(locks.THREAD_SENDER, thread.pk) as acquired:
            assert acquired
            holding.set()
            release.wait(20)
        connection.close()

    worker = threading.Thread(target=sender)
    worker.start()
    assert holding.wait(10)
    try:
        # when: the API and the command are asked to erase the contact
        url = reverse(
            "contact-erase", kwargs={"tenant": thread.tenant_id, "contact": thread.contact_id}
        )
        answer = key_client(thread.tenant).post(url, {}, format="json")
        with pytest.raises(CommandError, match="being sent right now"):
            call_command(
                "gdpr_erase",
                "--tenant",
                str(thread.tenant_id),
                "--phone",
                thread.contact.phone,
                stdout=StringIO(),
            )
    finally:
        release.set()
        worker.join(10)

    # then: a conflict that says why, and nothing erased
    assert answer.status_code == 409
    assert error_of(answer)["code"] == "contact_busy"
    assert "Try again in a minute" in error_of(answer)["message"]
    assert Message.objects.get(thread=thread, direction="inbound").text == "my address is 1 Main St"
    thread.contact.refresh_from_db()
    assert thread.contact.erased_at is None

    # and once the send is over, the erasure goes through
    assert key_client(thread.tenant).post(url, {}, format="json").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_while_recording_records_the_batch_and_sends_no_more(monkeypatch):
    # given: twelve replies, and the connection (with the sender lock) lost at the record
    from django.db import OperationalError

    from conversations.services import outbound

    thread = factories.ThreadFactory()
    with monkeypatch.context() as queue_only:
        queue_only.setattr(outbound, "_schedule_send", lambda thread: None)
        texts = [f"reply {n:02d}" for n in range(SEND_BATCH + 2)]
        _queue(thread, *texts)
    provider = ScriptedProvider()
    real = outbound._record_sent
    lost = [True]

    def losing(sent, *, one_by_one):
        real(sent, one_by_one=one_by_one)
        if lost:
            lost.pop()
            monkeypatch.setattr(connection, "is_usable", lambda: False)
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(outbound, "_record_sent", losing)

    # when
    with override_provider(provider), pytest.raises(TransientDeliveryError) as raised:
        thread_deliver_queued(thread_id=thread.pk)

    # then: the first batch is recorded as sent, and nothing more went out without the lock
    assert raised.value.code == "connection_lost"
    assert provider.sent == texts[:SEND_BATCH]
    statuses = list(Message.objects.order_by("created_at").values_list("status", flat=True))
    assert statuses == ["sent"] * SEND_BATCH + ["queued"] * 2


def test_a_reply_put_back_by_a_rate_limit_is_sent_again_even_if_it_was_marked_in_flight():
    # given: a reply sent and recorded, still carrying an in-flight mark (recorded by a worker
    # of the earlier release, which did not know the column)
    from channels_app.providers import ParsedStatus
    from conversations.services.outbound import message_status_update

    thread = factories.ThreadFactory()
    (message,) = _queue(thread, "one")
    provider = ScriptedProvider()
    with override_provider(provider):
        thread_deliver_queued(thread_id=thread.pk)
    Message.objects.filter(pk=message.pk).update(sending_since=timezone.now())

    # when: the provider fails it for a rate limit, and the wait is over
    message_status_update(
        channel=thread.channel,
        status=ParsedStatus(
            provider_message_id="SM-one", status="failed", raw_status="failed", error_code="63018"
        ),
    )
    message.refresh_from_db()
    assert (message.status, message.sending_since) == ("queued", None)
    past = (timezone.now() - timedelta(seconds=1)).isoformat()
    Message.objects.filter(pk=message.pk).update(metadata={**message.metadata, "retry_after": past})
    with override_provider(provider):
        assert thread_deliver_queued(thread_id=thread.pk) == {"sent": 1}

    # then
    assert provider.sent == ["one", "one"]


def test_the_model_caller_stops_at_a_deleted_thread_with_unprocessed_messages():
    # given: a deleted thread that still has an inbound message nobody processed
    from conversations.services.process import _thread_process_with_model

    thread = factories.ThreadFactory()
    factories.MessageFactory(thread=thread, text="hello")
    thread.soft_delete()

    # when / then: it returns (and leaves them), instead of looking again forever
    assert _thread_process_with_model(thread_id=thread.pk, answers={}) == 0
