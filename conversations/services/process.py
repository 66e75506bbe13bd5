"""The message pipeline after a message is stored: lock the thread, apply consent keywords,
run the automation, store its replies (sent after commit).

Everything that moves a conversation on takes the thread's row lock through `thread_lock`,
and everything that takes all of a contact's threads at once (a merge, an erasure) through
`contact_threads_lock`.
"""

from __future__ import annotations

from django.db import connection

from conversations.models import ChatThread


def thread_lock(*, thread_id: object, skip_locked: bool = False) -> ChatThread | None:
    """Lock the thread's row until the transaction ends and return it, with its contact,
    channel and tenant; None when the thread does not exist or is soft-deleted, or, with
    `skip_locked`, when another transaction holds the lock (that one moves it on).

    The invariant: whoever holds this lock is the only one moving the conversation on. Inbound
    processing, a flow's timer, a staff change of status or handoff, a note, a merge and an
    erasure all hold it, so two of them never interleave on one thread. Only the thread row
    is locked; a caller that also locks the contact takes it after the thread (the order
    every caller keeps: thread, then contact), so two of them never deadlock. Requires a
    transaction (on a database without row locks, such as SQLite, it is a plain read).
    """
    skip_locked = skip_locked and connection.features.has_select_for_update_skip_locked
    return (
        ChatThread.objects.select_for_update(skip_locked=skip_locked, of=("self",))
        .select_related("contact", "channel", "tenant")
        .filter(pk=thread_id)
        .first()
    )


def contact_threads_lock(
    *, contact_ids: list[object], include_deleted: bool = False, no_key: bool = False
) -> list[object]:
    """Lock every thread of these contacts (in primary key order, so two callers never
    deadlock) and return their ids: the lock of `thread_lock`, for work on a contact's whole
    conversation (a merge, an erasure), taken before the contacts' rows.

    `include_deleted` takes soft-deleted threads too. `no_key` takes FOR NO KEY UPDATE where
    the database has it: a concurrent insert of a message needs only KEY SHARE on its thread,
    so it never waits on (or deadlocks against) this lock. Requires a transaction.
    """
    manager = ChatThread.all_objects if include_deleted else ChatThread.objects
    no_key = no_key and connection.features.has_select_for_no_key_update
    return list(
        manager.select_for_update(no_key=no_key)
        .filter(contact_id__in=contact_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
