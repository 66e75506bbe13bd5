"""Reads for the inbox: contacts, threads and messages of one tenant, with a fixed query count."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.models import ChatThread, Contact, Direction, Message, MessageAttachment
from flows.models import FlowSession
from tenants.models import Tenant

# A contact is opted out when its latest consent event is an opt-out.
OPTED_OUT = Q(opted_out_at__isnull=False) & (
    Q(opted_in_at__isnull=True) | Q(opted_out_at__gt=F("opted_in_at"))
)


def contact_list(*, tenant: Tenant) -> QuerySet[Contact]:
    return Contact.objects.filter(tenant=tenant).order_by("-created_at", "-id")


def thread_list(*, tenant: Tenant) -> QuerySet[ChatThread]:
    """Threads with their contact (one query per page), most recent activity first."""
    return (
        ChatThread.objects.filter(tenant=tenant)
        .select_related("contact")
        .order_by(F("last_activity_at").desc(nulls_last=True), "-created_at", "-id")
    )


def message_list(*, thread: ChatThread) -> QuerySet[Message]:
    """The thread's messages with their live attachments (two queries per page)."""
    return (
        Message.objects.filter(thread=thread, tenant_id=thread.tenant_id)
        .prefetch_related(
            Prefetch(
                "attachments",
                queryset=MessageAttachment.objects.order_by("created_at", "id"),
            )
        )
        .order_by("-created_at", "-id")
    )


def thread_tenant_id(*, thread_id: object) -> object | None:
    """The tenant of a thread (None for a missing or deleted one), for binding log lines."""
    return ChatThread.objects.filter(pk=thread_id).values_list("tenant_id", flat=True).first()


# --- The contact page ---------------------------------------------------------------------------

CONTACT_TIMELINE_SIZE = 100


def contact_list_annotated(queryset: QuerySet[Contact]) -> QuerySet[Contact]:
    """`queryset` with `thread_count` (live threads) and `last_activity_at` (the latest
    activity of those threads), computed in the same query.

    Correlated subqueries rather than a join and GROUP BY: the changelist's COUNT leaves
    them out (Django strips unused annotations), so counting a large table stays a count."""
    threads = ChatThread.objects.filter(contact=OuterRef("pk"))
    return queryset.annotate(
        thread_count=Coalesce(
            Subquery(
                threads.order_by().values("contact").annotate(n=Count("pk")).values("n"),
                output_field=IntegerField(),
            ),
            0,
        ),
        last_activity_at=Subquery(
            threads.filter(last_activity_at__isnull=False)
            .order_by("-last_activity_at")
            .values("last_activity_at")[:1]
        ),
    )


def contact_threads(*, contact: Contact) -> list[ChatThread]:
    """Every live thread of the contact, on every channel, with its channel and
    `message_count` (live messages): one query, most recent activity first."""
    return list(
        ChatThread.objects.filter(contact=contact, tenant_id=contact.tenant_id)
        .select_related("channel__tenant")
        .annotate(message_count=Count("messages", filter=Q(messages__deleted_at__isnull=True)))
        .order_by(F("last_activity_at").desc(nulls_last=True), "-created_at", "-id")
    )


class TimelineKind:
    """What happened, and its place among events at the same instant (higher: later, shown
    first)."""

    FLOW_RUN = "flow_run"
    THREAD_OPENED = "thread_opened"
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    ERASURE_REQUESTED = "erasure_requested"
    ERASED = "erased"

    # In the order they happen when they share an instant (a flow's first run opens the
    # conversation; an erasure request comes before the erasure).
    RANKS = {
        OPTED_IN: 1,
        THREAD_OPENED: 2,
        FLOW_RUN: 3,
        OPTED_OUT: 4,
        ERASURE_REQUESTED: 5,
        ERASED: 6,
    }


@dataclass(frozen=True)
class TimelineCursor:
    """Where a page of the timeline stops: events strictly older are on the next page."""

    at: datetime
    rank: int
    key: uuid.UUID

    def __str__(self) -> str:
        return f"{self.at.isoformat()}~{self.rank}~{self.key}"

    @classmethod
    def parse(cls, value: str) -> "TimelineCursor":
        """The inverse of `str()`. Raises ValueError for anything else (a naive time too)."""
        at, rank, key = value.split("~")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("The cursor's time has no offset.")
        try:
            moment = moment.astimezone(UTC)  # a time the database can compare
        except OverflowError:
            raise ValueError("The cursor's time is out of range.") from None
        return cls(at=moment, rank=int(rank), key=uuid.UUID(key))

    def sort_key(self) -> tuple[datetime, int, uuid.UUID]:
        return (self.at, self.rank, self.key)


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    kind: str
    key: uuid.UUID
    thread: ChatThread | None = None
    session: FlowSession | None = None

    @property
    def cursor(self) -> TimelineCursor:
        return TimelineCursor(at=self.at, rank=TimelineKind.RANKS[self.kind], key=self.key)


def _older_than(cursor: TimelineCursor, rank: int, *, at: str = "created_at") -> Q:
    """Rows of a source of events of `rank` that sort strictly before `cursor`."""
    if rank < cursor.rank:
        return Q(**{f"{at}__lte": cursor.at})
    if rank > cursor.rank:
        return Q(**{f"{at}__lt": cursor.at})
    return Q(**{f"{at}__lt": cursor.at}) | Q(**{at: cursor.at, "id__lt": cursor.key})


def contact_timeline(
    *,
    contact: Contact,
    threads: list[ChatThread],
    before: TimelineCursor | None = None,
    limit: int = CONTACT_TIMELINE_SIZE,
) -> tuple[list[TimelineEvent], TimelineCursor | None]:
    """The contact's history, newest first: the flow runs of its `threads` (as given by
    `contact_threads`), each thread's opening and the consent events recorded on the contact
    (its latest opt-in and opt-out, erasure request, erasure).

    At most `limit` events strictly older than `before` (keyset paging: a page costs the
    same however deep). Returns the page and the cursor of the next (older) page, or None
    when there is none. One query (the flow runs, with their flows); the other events come
    from `contact` and `threads`.
    """
    by_id = {thread.pk: thread for thread in threads}
    sessions = FlowSession.objects.filter(thread_id__in=list(by_id), tenant_id=contact.tenant_id)
    if before is not None:
        sessions = sessions.filter(_older_than(before, TimelineKind.RANKS[TimelineKind.FLOW_RUN]))
    events = [
        TimelineEvent(
            at=session.created_at,
            kind=TimelineKind.FLOW_RUN,
            key=session.pk,
            thread=by_id[session.thread_id],
            session=session,
        )
        for session in sessions.select_related("flow").order_by("-created_at", "-id")[: limit + 1]
    ]
    events += [
        TimelineEvent(
            at=thread.created_at, kind=TimelineKind.THREAD_OPENED, key=thread.pk, thread=thread
        )
        for thread in threads
    ]
    for kind, at in (
        (TimelineKind.OPTED_IN, contact.opted_in_at),
        (TimelineKind.OPTED_OUT, contact.opted_out_at),
        (TimelineKind.ERASURE_REQUESTED, contact.erasure_requested_at),
        (TimelineKind.ERASED, contact.erased_at),
    ):
        if at is not None:
            events.append(TimelineEvent(at=at, kind=kind, key=contact.pk))
    if before is not None:
        events = [event for event in events if event.cursor.sort_key() < before.sort_key()]
    events.sort(key=lambda event: event.cursor.sort_key(), reverse=True)
    page = events[:limit]
    return page, (page[-1].cursor if len(events) > limit else None)


# WhatsApp's (and Instagram's) service window: free-form messages only this long after the
# contact's last message.
WINDOW = timedelta(hours=24)


def thread_window_open(*, thread: ChatThread, now: datetime | None = None) -> bool:
    """True when the contact wrote within the last 24 hours (WhatsApp's service window)."""
    now = now or timezone.now()
    last = thread.last_inbound_at
    latest_message = (
        Message.objects.filter(thread=thread, direction=Direction.INBOUND)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if latest_message and (last is None or latest_message > last):
        last = latest_message
    return last is not None and now - last <= WINDOW
