"""#16 item 2: a thread's replies are claimed and recorded per batch, and a message the
provider may have accepted is still never sent twice."""

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

    from django.apps import apps

    migration = import_module("conversations.migrations.0012_message_sending_since")
    thread = factories.ThreadFactory()
    (message,) = _queue(thread, "one")
    since = timezone.now() - timedelta(minutes=3)
    Message.objects.filter(pk=message.pk).update(
        metadata={"sending_since": since.isoformat(), "choices": []}
    )
    (garbled,) = _queue(thread, "two")
    Message.objects.filter(pk=garbled.pk).update(metadata={"sending_since": "2026-13-45T99"})

    migration.in_flight_to_column(apps, None)

    message.refresh_from_db()
    garbled.refresh_from_db()
    assert (message.sending_since, message.metadata) == (since, {"choices": []})
    assert garbled.sending_since == migration.LONG_AGO and garbled.metadata == {}
