"""Reads for the staff inbox: the list of conversations and one conversation's timeline.

Every read starts from `tenants.access.scope`, so a user only ever gets the threads of tenants
they may see. Pages are keyset-paged and cost a fixed number of queries however many threads or
messages there are:

- the list: one query for a page of threads (contact, channel and assignee joined; unread count,
  last message id and waiting time as correlated subqueries on the (thread, created_at) index),
  one for those threads' last messages;
- a conversation: one query for a page of messages (sender joined), one for their attachments,
  one for the notes in the same span of time.

Names are encrypted, so a name search compares blind indexes of whole words (see
`core.crypto.name_index`): "maria silva" finds "Maria da Silva" (case and accents ignored),
"mar" finds nothing. A phone is found exactly through the phone's blind index, an id by itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import (
    Count,
    DateTimeField,
    F,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils.dateparse import parse_datetime

from channels_app.models import ChannelInstance
from conversations.models import (
    ChatThread,
    Direction,
    Message,
    MessageAttachment,
    ThreadNote,
    ThreadStatus,
)
from core.crypto import (
    ig_user_lookup,
    name_word_lookup,
    name_words,
    normalize_phone,
    normalize_wa_user_id,
    phone_lookup,
    wa_user_lookup,
)
from tenants import access

INBOX_PAGE = 50
CONVERSATION_PAGE = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class InboxFilters:
    """What the list shows. `status` is a ThreadStatus value or "all"."""

    needs_human: bool = False
    mine: bool = False
    unassigned: bool = False
    channel: uuid.UUID | None = None
    status: str = ThreadStatus.OPEN
    q: str = ""

    @classmethod
    def from_query(cls, params: Any) -> InboxFilters:
        """From a request's GET parameters; anything unreadable is ignored (a list filter is
        a link a person clicked, not an API contract)."""
        status = params.get("status", ThreadStatus.OPEN)
        if status not in (*ThreadStatus.values, "all"):
            status = ThreadStatus.OPEN
        try:
            channel = uuid.UUID(params.get("channel", ""))
        except ValueError:
            channel = None
        return cls(
            needs_human=params.get("needs_human") == "1",
            mine=params.get("mine") == "1",
            unassigned=params.get("unassigned") == "1",
            channel=channel,
            status=status,
            q=(params.get("q") or "").strip()[:200],
        )


def _search(queryset: QuerySet[ChatThread], q: str) -> QuerySet[ChatThread]:
    try:
        wanted = uuid.UUID(q)
    except ValueError:
        pass
    else:
        return queryset.filter(Q(pk=wanted) | Q(contact_id=wanted))
    user_id = normalize_wa_user_id(q)
    if user_id:  # a WhatsApp user id, exactly
        return queryset.filter(contact__wa_user_lookup=wa_user_lookup(user_id))
    if q.lower().startswith("instagram:"):  # an Instagram-scoped id, exactly
        ig_lookup = ig_user_lookup(q)
        return queryset.filter(contact__ig_user_lookup=ig_lookup) if ig_lookup else queryset.none()
    digits = sum(ch.isdigit() for ch in q)
    if digits >= 6 and digits >= len(q.replace(" ", "")) - 3:  # a phone number or an IGSID
        phone = normalize_phone(q)
        ig_lookup = ig_user_lookup(q) if q.isdigit() else ""
        found = Q(contact__phone_lookup=phone_lookup(phone)) if phone else Q(pk__in=[])
        if ig_lookup:
            found |= Q(contact__ig_user_lookup=ig_lookup)
        return queryset.filter(found)
    words = name_words(q)
    if not words:
        return queryset.none()
    for word in words:
        queryset = queryset.filter(contact__name_index__contains=f" {name_word_lookup(word)} ")
    return queryset


def _encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode_cursor(raw: str) -> dict[str, Any] | None:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        activity = parse_datetime(values["a"])
        if activity is None or activity.tzinfo is None:
            return None
        return {
            "needs_human": bool(values["n"]),
            "activity": activity.astimezone(UTC),  # raises for a time out of range
            "id": uuid.UUID(values["i"]),
        }
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None


@dataclass
class InboxRow:
    thread: ChatThread
    last_message: Message | None
    unread: int
    waiting_since: datetime | None


@dataclass
class InboxPage:
    rows: list[InboxRow]
    next_cursor: str | None
    filters: InboxFilters
    channels: list[ChannelInstance] = field(default_factory=list)


def inbox_threads(*, user: Any, filters: InboxFilters, cursor: str = "") -> InboxPage:
    """A page of the conversations `user` may see: those waiting for a human first, then by
    latest activity; `cursor` (from the previous page's `next_cursor`) continues the list."""
    queryset = access.scope(ChatThread.objects.all(), user).annotate(
        activity=Coalesce("last_activity_at", "created_at")
    )
    if filters.status != "all":
        queryset = queryset.filter(status=filters.status)
    if filters.needs_human:
        queryset = queryset.filter(needs_human=True)
    if filters.mine:
        queryset = queryset.filter(assigned_to_id=getattr(user, "pk", None))
    if filters.unassigned:
        queryset = queryset.filter(assigned_to__isnull=True)
    if filters.channel:
        queryset = queryset.filter(channel_id=filters.channel)
    if filters.q:
        queryset = _search(queryset, filters.q)
    position = _decode_cursor(cursor) if cursor else None
    if position is not None and position["activity"] is not None:
        n, a, i = position["needs_human"], position["activity"], position["id"]
        queryset = queryset.filter(
            Q(needs_human__lt=n)
            | Q(needs_human=n, activity__lt=a)
            | Q(needs_human=n, activity=a, pk__lt=i)
        )
    messages = Message.objects.filter(thread=OuterRef("pk"))
    last_out = Subquery(
        messages.filter(direction=Direction.OUTBOUND)
        .order_by("-created_at")
        .values("created_at")[:1],
        output_field=DateTimeField(),
    )
    queryset = (
        queryset.select_related("contact", "channel", "assigned_to")
        .annotate(last_out_at=last_out)
        .annotate(
            last_message_id=Subquery(messages.order_by("-created_at", "-id").values("pk")[:1]),
            unread=Coalesce(
                Subquery(
                    messages.filter(
                        direction=Direction.INBOUND,
                        created_at__gt=Coalesce(OuterRef("agent_last_seen_at"), Value(_EPOCH)),
                    )
                    .order_by()
                    .values("thread")
                    .annotate(count=Count("pk"))
                    .values("count"),
                    output_field=IntegerField(),
                ),
                0,
            ),
            waiting_since=Subquery(
                messages.filter(
                    direction=Direction.INBOUND,
                    created_at__gt=Coalesce(OuterRef("last_out_at"), Value(_EPOCH)),
                )
                .order_by("created_at")
                .values("created_at")[:1],
                output_field=DateTimeField(),
            ),
        )
        .order_by("-needs_human", F("activity").desc(), "-id")
    )
    threads = list(queryset[: INBOX_PAGE + 1])
    more = len(threads) > INBOX_PAGE
    threads = threads[:INBOX_PAGE]
    last_messages = {
        message.pk: message
        for message in Message.objects.filter(
            pk__in=[t.last_message_id for t in threads if t.last_message_id]
        ).only("pk", "thread_id", "direction", "kind", "text", "sender", "status", "created_at")
    }
    rows = [
        InboxRow(
            thread=thread,
            last_message=last_messages.get(thread.last_message_id),
            unread=thread.unread,
            waiting_since=thread.waiting_since if thread.status == ThreadStatus.OPEN else None,
        )
        for thread in threads
    ]
    next_cursor = None
    if more and threads:
        tail = threads[-1]
        next_cursor = _encode_cursor(
            {"n": tail.needs_human, "a": tail.activity.isoformat(), "i": str(tail.pk)}
        )
    return InboxPage(rows=rows, next_cursor=next_cursor, filters=filters)


def inbox_channels(*, user: Any) -> list[ChannelInstance]:
    """The channels `user` may filter by (their tenants' live channels)."""
    return list(
        access.scope(ChannelInstance.objects.all(), user)
        .select_related("tenant")
        .order_by("tenant__name", "identifier")
    )


def inbox_version(*, user: Any, filters: InboxFilters) -> str:
    """Changes whenever the list could look different (for live polling: one query)."""
    queryset = access.scope(ChatThread.objects.all(), user)
    if filters.status != "all":
        queryset = queryset.filter(status=filters.status)
    stats = queryset.aggregate(count=Count("pk"), latest=Max("updated_at"))
    latest = stats["latest"].isoformat() if stats["latest"] else ""
    return f"{stats['count']}-{latest}"


# --- One conversation ---------------------------------------------------------------------


@dataclass
class TimelineItem:
    """A message or a note, and whether a new day starts with it."""

    at: datetime
    message: Message | None = None
    note: ThreadNote | None = None
    new_day: bool = False


@dataclass
class Timeline:
    items: list[TimelineItem]
    older_than: uuid.UUID | None  # the id to page back from, when older messages exist
    paged: bool  # showing an older page (no live updates there)
    anchor_missing: bool = False  # `before` named no message of this thread


def conversation_timeline(*, thread: ChatThread, before: str = "") -> Timeline:
    """The latest CONVERSATION_PAGE messages of the thread (or those before the message
    `before`), oldest first, with the notes written in the same span, and day separators."""
    messages = Message.objects.filter(thread=thread)
    paged = anchor_missing = False
    if before:
        try:
            anchor = messages.only("created_at").get(pk=uuid.UUID(before))
        except (ValueError, Message.DoesNotExist):
            anchor = None
        anchor_missing = anchor is None
        if anchor is not None:
            paged = True
            messages = messages.filter(
                Q(created_at__lt=anchor.created_at)
                | Q(created_at=anchor.created_at, id__lt=anchor.pk)
            )
    page = list(
        messages.select_related("sent_by")
        .prefetch_related(
            Prefetch("attachments", queryset=MessageAttachment.objects.order_by("created_at"))
        )
        .order_by("-created_at", "-id")[: CONVERSATION_PAGE + 1]
    )
    more = len(page) > CONVERSATION_PAGE
    page = page[:CONVERSATION_PAGE]
    page.reverse()
    notes = ThreadNote.objects.filter(thread=thread).select_related("author")
    if more and page:
        notes = notes.filter(created_at__gte=page[0].created_at)
    if paged and page:
        notes = notes.filter(created_at__lte=page[-1].created_at)
    items = [TimelineItem(at=m.created_at, message=m) for m in page]
    items += [TimelineItem(at=n.created_at, note=n) for n in notes]
    items.sort(key=lambda item: item.at)
    day = None
    for item in items:
        item_day = item.at.date()
        item.new_day = item_day != day
        day = item_day
    return Timeline(
        items=items,
        older_than=page[0].pk if more and page else None,
        paged=paged,
        anchor_missing=anchor_missing,
    )


def conversation_version(*, thread: ChatThread) -> str:
    """Changes whenever the conversation (messages, their statuses, notes, the thread's own
    state) could look different: one query."""
    stats = ChatThread.objects.filter(pk=thread.pk).aggregate(
        thread_at=Max("updated_at"),
        message_at=Max("messages__updated_at"),
        message_count=Count("messages"),
    )
    return "-".join(
        value.isoformat() if hasattr(value, "isoformat") else str(value)
        for value in (stats["thread_at"], stats["message_at"], stats["message_count"])
    )
