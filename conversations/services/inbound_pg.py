"""Storing an inbound message on PostgreSQL with one round trip.

`message_receive` is the webhook's hot path. With the ORM, a delivery costs a transaction of
seven to twelve round trips (find the thread; else find or create the contact and the
thread, each in a savepoint; the insert-order lock; the message in a savepoint; commit), and
each is a few hundred microseconds of network, parsing and planning. Here the same steps run
inside the database, in the function `conversations_inbound_store` (migration 0003), called
in autocommit: one round trip, one commit, and plans that PL/pgSQL keeps for the connection.

The rows are built by the models and passed as JSON: every value is prepared by its own
field (`get_prep_value`: encryption, UUIDs, JSON), exactly as `Model.save()` prepares it, so
the function names no column beyond the keys it looks rows up by.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.db import connection
from django.db.models import Model

from conversations.models import ChatThread, Contact, Message
from core import locks


@dataclass(frozen=True)
class StoreOutcome:
    """What the function did: stored the message (`stored_id`, `stored_at`) or found it
    stored (`duplicate_of`). For a stored message, `of_contact` is its contact and
    `stored_name` that contact's encrypted name if the contact existed before (None if the
    call created it)."""

    stored_id: uuid.UUID | None
    stored_at: datetime | None
    duplicate_of: uuid.UUID | None
    in_thread: uuid.UUID | None
    of_contact: uuid.UUID | None
    stored_name: str | None


def _json_default(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()  # full precision, with the offset
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _row(instance: Model, *, skip: tuple[str, ...] = ()) -> str:
    """The instance as a JSON object of column -> value, prepared as for an insert."""
    row = {
        field.column: field.get_prep_value(field.pre_save(instance, add=True))
        for field in instance._meta.concrete_fields
        if field.attname not in skip
    }
    return json.dumps(row, default=_json_default)


def message_store(*, contact: Contact, thread: ChatThread, message: Message) -> StoreOutcome:
    """Store `message` in the live thread of the contact with `contact.phone_lookup` on
    `message.channel`, creating the contact (as `contact`) and the thread (as `thread`) when
    they are missing; nothing is created for a duplicate provider message id.

    Requires PostgreSQL. `contact`, `thread` and `message` are unsaved instances; the
    function sets the foreign keys between them and the message's `created_at`. Safe under
    concurrent deliveries: a contact, thread or message inserted first by another delivery
    is found instead, and a duplicate keeps nothing of this call. One statement: in
    autocommit it is its own transaction.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM conversations_inbound_store(%s::jsonb, %s::jsonb, %s::jsonb, %s)",
            [
                _row(contact),
                _row(thread, skip=("contact_id",)),
                _row(message, skip=("thread_id", "created_at", "updated_at")),
                locks.THREAD_INSERT_ORDER,
            ],
        )
        outcome = StoreOutcome(*cursor.fetchone())
    if outcome.stored_id is None and outcome.duplicate_of is None:
        raise RuntimeError("inbound message neither stored nor found")
    return outcome
