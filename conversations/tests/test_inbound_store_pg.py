"""The PostgreSQL ingest (`conversations_inbound_store`, one round trip) against the ORM path
it replaces on PostgreSQL: the same rows, one statement, and nothing kept for a duplicate,
including one that races it."""

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from channels_app.providers import ParsedInbound, ParsedLocation
from conversations.models import ChatThread, Contact, Message
from conversations.services import inbound
from conversations.services.inbound import message_receive
from core import locks
from core.crypto import phone_lookup
from tests import factories

pytestmark = pytest.mark.postgres


def _inbound(sid, phone="+15559990001", name="Ana", text="Hello", **extra):
    return ParsedInbound(
        provider_message_id=sid,
        from_phone=phone,
        text=text,
        profile_name=name,
        wa_id=phone.lstrip("+"),
        **extra,
    )


def _row(message):
    """What a stored inbound message says, without its ids and times."""
    message = Message.objects.select_related("thread__contact").get(pk=message.pk)
    contact = message.thread.contact
    return {
        "message": {
            field: getattr(message, field)
            for field in (
                "tenant_id",
                "channel_id",
                "direction",
                "kind",
                "text",
                "private_data",
                "status",
                "sender",
                "metadata",
                "processed_at",
                "send_attempts",
                "sent_by_id",
            )
        },
        "thread": {
            field: getattr(message.thread, field)
            for field in ("tenant_id", "channel_id", "status", "needs_human", "metadata")
        },
        "contact": {
            field: getattr(contact, field)
            for field in ("tenant_id", "phone", "name", "phone_lookup", "external_id")
        },
    }


@pytest.mark.django_db
def test_the_one_statement_store_writes_what_the_orm_path_writes(monkeypatch):
    # given: one channel, and two new contacts sending the same kind of message
    channel = factories.TwilioChannelFactory()
    located = {
        "kind": "location",
        "location": ParsedLocation(latitude=-23.55, longitude=-46.63, name="Gym", address="Av."),
        "raw_type": "location",
        "timestamp": datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        "context_id": "SMearlier",
    }

    # when: one message through each path
    fast, created_fast = message_receive(
        channel=channel, inbound=_inbound("SMfast", phone="+15559990001", **located)
    )
    monkeypatch.setattr(inbound, "connection", _NotPostgres())
    slow, created_slow = message_receive(
        channel=channel, inbound=_inbound("SMslow", phone="+15559990002", **located)
    )

    # then: the same values, apart from the phone they came from
    assert created_fast and created_slow
    fast_row, slow_row = _row(fast), _row(slow)
    for row, phone in ((fast_row, "+15559990001"), (slow_row, "+15559990002")):
        assert row["contact"].pop("phone") == phone
        assert row["contact"].pop("phone_lookup") == phone_lookup(phone)
        assert row["contact"].pop("external_id").startswith("wa_")
    assert fast_row == slow_row
    assert fast.created_at == Message.objects.get(pk=fast.pk).created_at


class _NotPostgres:
    """Stands in for the connection in `inbound` so that the ORM path is taken."""

    vendor = "other"


@pytest.mark.django_db
def test_a_returning_contact_costs_one_statement():
    # given: a contact who wrote before
    channel = factories.TwilioChannelFactory()
    message_receive(channel=channel, inbound=_inbound("SM1"))

    # when
    with CaptureQueriesContext(connection) as queries:
        message, created = message_receive(channel=channel, inbound=_inbound("SM2"))

    # then: one round trip, in the thread of the first message
    assert created
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert Message.objects.filter(thread_id=message.thread_id).count() == 2


@pytest.mark.django_db
def test_a_new_profile_name_replaces_the_stored_one():
    channel = factories.TwilioChannelFactory()
    message_receive(channel=channel, inbound=_inbound("SM1", name="Ana"))
    message_receive(channel=channel, inbound=_inbound("SM2", name="Ana Maria"))
    message_receive(channel=channel, inbound=_inbound("SM3", name=""))  # no name: kept
    assert Contact.objects.get().name == "Ana Maria"


@pytest.mark.django_db
def test_a_duplicate_from_another_sender_creates_nothing():
    # given: a stored message
    channel = factories.TwilioChannelFactory()
    first, _ = message_receive(channel=channel, inbound=_inbound("SMsame", phone="+15559990001"))

    # when: the same provider id arrives from a sender we do not know
    again, created = message_receive(
        channel=channel, inbound=_inbound("SMsame", phone="+15559990002")
    )

    # then
    assert (again.pk, created) == (first.pk, False)
    assert Contact.objects.count() == 1
    assert ChatThread.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_that_commits_first_leaves_nothing_of_the_loser():
    # given: a delivery stored by another connection, not yet committed
    channel = factories.TwilioChannelFactory()
    holding, release = threading.Event(), threading.Event()
    errors = []

    def first_delivery():
        try:
            with transaction.atomic():
                message_receive(channel=channel, inbound=_inbound("SMrace", phone="+15559990001"))
                holding.set()
                release.wait(timeout=10)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=first_delivery)
    worker.start()
    assert holding.wait(timeout=10)

    # when: the same provider id from a new sender; its insert waits on the first one, which
    # commits meanwhile
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    message, created = message_receive(
        channel=channel, inbound=_inbound("SMrace", phone="+15559990002")
    )
    waited = time.monotonic() - started
    worker.join(timeout=10)

    # then: it waited, found the first one's message, and kept no contact or thread of its own
    assert not errors, errors
    assert waited >= 0.2
    assert created is False
    assert message.pk == Message.objects.get(provider_message_id="SMrace").pk
    assert list(Contact.all_objects.values_list("phone_lookup", flat=True)) == [
        phone_lookup("+15559990001")
    ]
    assert ChatThread.all_objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_store_waits_for_the_threads_insert_order_lock():
    # given: a returning contact's thread, and another connection holding the thread's
    # insert-order lock as the ORM path takes it (core.locks derives the key in Python, the
    # function in SQL: they must agree)
    channel = factories.TwilioChannelFactory()
    first, _ = message_receive(channel=channel, inbound=_inbound("SM1"))
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock():
        try:
            with transaction.atomic():
                locks.advisory_xact_lock(locks.THREAD_INSERT_ORDER, first.thread_id)
                holding.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert holding.wait(timeout=10)

    # when: the next message arrives while the lock is held for 0.3 s
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    second, created = message_receive(channel=channel, inbound=_inbound("SM2"))
    waited = time.monotonic() - started
    holder.join(timeout=10)

    # then: it waited for the lock
    assert created and second.thread_id == first.thread_id
    assert waited >= 0.25


@pytest.mark.django_db
def test_the_migration_pseudonymises_ids_stored_in_clear():
    # given: a message stored before ids were pseudonymised (written around the field)
    import importlib

    from django.apps import apps

    from core.crypto import provider_id_pseudonym

    channel = factories.TwilioChannelFactory()
    message, _ = message_receive(channel=channel, inbound=_inbound("SMplain"))
    legacy = "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_message SET provider_message_id = %s, metadata = %s "
            "WHERE id = %s",
            [legacy, '{"context_id": "' + legacy + '"}', message.pk],
        )

    # when
    migration = importlib.import_module("conversations.migrations.0005_provider_ids_pseudonymised")
    migration.pseudonymise(apps, None)

    # then
    message.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute("SELECT provider_message_id FROM conversations_message")
        assert cursor.fetchone()[0] == provider_id_pseudonym(legacy)
    assert message.metadata["context_id"] == provider_id_pseudonym(legacy)


@pytest.mark.django_db
def test_a_redelivery_of_a_soft_deleted_message_is_a_duplicate():
    channel = factories.TwilioChannelFactory()
    first, _ = message_receive(channel=channel, inbound=_inbound("SMgone"))
    Message.objects.filter(pk=first.pk).soft_delete()

    again, created = message_receive(channel=channel, inbound=_inbound("SMgone"))

    assert (again.pk, created) == (first.pk, False)
