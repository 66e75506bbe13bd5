"""Running flows: the adapter between the pipeline and the pure-Python flow engine.

`flow_handle_inbound` turns one stored inbound message into the replies to send, applying
automation pauses, session expiry, keyword interruption and flow selection, and persists the
session (consent keywords are the pipeline's: `conversations.services.consent`). Its database
cost is small and fixed: the waiting session (one query, with its flow version), the channel's
active flows (cached, see `flows.selectors`), the parsed definition (memoised per process) and
the session write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from conversations.models import ChatThread, Message
from conversations.selectors import WINDOW, thread_window_open
from core import metrics
from flows import ai, selectors
from flows.engine import (
    Event,
    EventType,
    FlowDefinition,
    FlowValidationError,
    InboundMessage,
    QuestionNode,
    RunContext,
    SessionState,
    Status,
    StepResult,
    TemplateSend,
    expire_session,
    fire_timeout,
    interrupt_session,
    match_keyword_flow,
    resume_session,
    select_flow,
    session_is_stale,
    start_session,
)
from flows.engine import InputNode as _InputNode
from flows.models import Flow, FlowEvent, FlowEventKind, FlowSession, SessionStatus
from integrations import events as webhook_events
from tenants.models import Tenant

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    """A message to store and send. `choices` are (choice id, label) pairs of a question."""

    text: str
    sender: str = "flow"
    media_url: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    # An approved WhatsApp template to send instead of the text (a message node's
    # `whatsapp_template`; see conversations.services.templates.flow_template_message).
    template: TemplateSend | None = None


@dataclass(frozen=True)
class FlowHandoff:
    """The flow handed the conversation to a human (its handoff node), at `at`, because of
    `reason`; `flow_id` is the flow version's primary key."""

    reason: str
    flow_id: Any
    at: datetime


@dataclass(frozen=True)
class FlowRun:
    """What the thread's automation decided for one message or one timer. The session and its
    events are already stored (they are the flow's); the replies are to be stored and sent,
    and a handoff applied to the thread, by the pipeline
    (`conversations.services.process`)."""

    replies: list[Reply] = field(default_factory=list)
    handoff: FlowHandoff | None = None


# --- running flows --------------------------------------------------------------------------


def _inbound_of(message: Message) -> InboundMessage:
    """The engine's view of a stored message: its text, button id, kind, and for a location
    or a WhatsApp Flow reply the structured content (decrypted from `private_data`)."""
    metadata = message.metadata or {}
    interactive_id = metadata.get("interactive_id")
    text = message.text or None
    content = message.private_data or {}
    data: dict[str, Any] | None = None
    if message.kind == "location" and isinstance(content.get("location"), dict):
        data = content["location"]
    elif message.kind == "flow_reply" and isinstance(content.get("flow_reply"), dict):
        response = content["flow_reply"].get("response")
        data = response if isinstance(response, dict) else None
    return InboundMessage(
        text=text,
        interactive_id=str(interactive_id) if interactive_id else None,
        kind=message.kind or "text",
        data=data,
    )


# Kinds that never start or advance a flow: an emoji on one of our messages is not an answer.
NO_FLOW_KINDS = frozenset({"reaction"})


def _state_of(session: FlowSession) -> SessionState:
    return SessionState(
        status=session.status,
        node_id=session.current_node or None,
        variables=dict(session.variables or {}),
        retries=session.retries,
        ai_turns=session.ai_turns,
        waiting_since=session.waiting_since,
        wait_expires_at=session.wait_expires_at,
        wait_seq=session.wait_seq,
    )


def _stale_at(definition: FlowDefinition, state: SessionState) -> datetime | None:
    """When a wait without a node timeout becomes stale (None when not waiting or timed)."""
    if state.status != Status.WAITING or state.waiting_since is None:
        return None
    node = definition.get_node(state.node_id)
    if isinstance(node, QuestionNode | _InputNode) and node.timeout is not None:
        return None
    return state.waiting_since + timedelta(seconds=definition.settings.session_timeout_seconds)


def _apply_state(
    session: FlowSession, definition: FlowDefinition, state: SessionState, now: datetime
) -> None:
    session.status = state.status
    session.current_node = state.node_id or ""
    session.variables = state.variables
    session.retries = state.retries
    session.ai_turns = state.ai_turns
    session.wait_seq = state.wait_seq
    session.waiting_since = state.waiting_since
    session.wait_expires_at = state.wait_expires_at
    session.stale_at = _stale_at(definition, state)
    if state.status in Status.FINISHED and session.ended_at is None:
        session.ended_at = now


_SESSION_FIELDS = [
    "status",
    "current_node",
    "variables",
    "retries",
    "ai_turns",
    "wait_seq",
    "waiting_since",
    "wait_expires_at",
    "stale_at",
    "ended_at",
    "handed_off",
    "updated_at",
]


def _end_session(session: FlowSession, result: StepResult, now: datetime) -> None:
    """Persist a quiet ending (expired/interrupted): the state has no node-dependent fields."""
    session.status = result.state.status
    session.waiting_since = None
    session.wait_expires_at = None
    session.stale_at = None
    session.ended_at = now
    session.save(update_fields=_SESSION_FIELDS)
    _record_events(session, result, now)


_OUTCOMES = {
    EventType.HANDOFF: "handed_off",
    EventType.SESSION_COMPLETED: "completed",
    EventType.SESSION_EXPIRED: "expired",
    EventType.SESSION_FAILED: "failed",
    EventType.SESSION_INTERRUPTED: "interrupted",
}

# Engine events recorded as FlowEvent rows. A handoff also completes its session: it is
# recorded once, as a handoff (the engine emits no session_completed for it).
_RECORDED = {
    EventType.NODE_ENTERED: FlowEventKind.ENTERED,
    EventType.NODE_EXITED: FlowEventKind.EXITED,
    EventType.SESSION_COMPLETED: FlowEventKind.COMPLETED,
    EventType.HANDOFF: FlowEventKind.HANDED_OFF,
    EventType.SESSION_EXPIRED: FlowEventKind.EXPIRED,
    EventType.SESSION_FAILED: FlowEventKind.FAILED,
    EventType.SESSION_INTERRUPTED: FlowEventKind.INTERRUPTED,
    EventType.AI_ANSWERED: FlowEventKind.AI_ANSWERED,
    EventType.AI_ERROR: FlowEventKind.AI_FALLBACK,
}


def _record_events(session: FlowSession, result: StepResult, now: datetime) -> None:
    """Store the step's route and outcome as FlowEvent rows (one bulk insert), count the
    outcome in the metrics, and log what staff may need to look into (ids only)."""
    rows = [
        FlowEvent(
            tenant_id=session.tenant_id,
            flow_id=session.flow_id,
            session_id=session.pk,
            kind=_RECORDED[event.type],
            node_id=str(event.data.get("node_id") or "")[:64],
            exit=str(event.data.get("exit") or "")[:80],
            created_at=now,
        )
        for event in result.events
        if event.type in _RECORDED
    ]
    if rows:
        FlowEvent.objects.bulk_create(rows)
    # One outcome per ending; a handoff ends its session too and counts as a handoff.
    outcomes = [_OUTCOMES[e.type] for e in result.events if e.type in _OUTCOMES]
    if outcomes:
        metrics.flow_outcome("handed_off" if "handed_off" in outcomes else outcomes[0])
    for event in result.events:
        if event.type in EventType.PATH:
            continue
        extra = {
            "flow": str(session.flow_id),
            "session": str(session.pk) if session.pk else None,
            "chat_thread": str(session.thread_id),
            "node_id": event.data.get("node_id"),
        }
        if event.data.get("reason") and event.type == EventType.SESSION_INTERRUPTED:
            extra["reason"] = event.data["reason"]  # keyword, opt_out, agent, paused: no PII
        if event.type == EventType.SESSION_FAILED:
            # The engine's error text names nodes and limits, never message content.
            logger.error("flow session failed", extra={**extra, "error": event.data.get("error")})
        elif event.type == EventType.AI_ERROR:
            logger.warning("flow ai node fell back", extra=extra)
        elif event.type in (
            EventType.SESSION_EXPIRED,
            EventType.SESSION_INTERRUPTED,
            EventType.HANDOFF,
        ):
            logger.info(f"flow {event.type}", extra=extra)


def _replies(result: StepResult) -> list[Reply]:
    return [
        Reply(
            text=out.text,
            sender=out.sender,
            media_url=out.media_url,
            choices=tuple((choice.id, choice.label) for choice in out.choices),
            template=out.template,
        )
        for out in result.outbound
    ]


def _window_open(thread: ChatThread, message: Message | None, now: datetime) -> bool:
    """WhatsApp's 24-hour window for the step: open when the inbound message being handled
    (or the thread's latest) is less than 24 hours old. No query for an inbound message."""
    if message is None:
        return thread_window_open(thread=thread, now=now)
    latest = max(filter(None, (thread.last_inbound_at, message.created_at)))
    return now - latest <= WINDOW


class _Runner:
    """What one call needs to run steps for a thread: context, persistence, event handling."""

    def __init__(
        self,
        *,
        thread: ChatThread,
        now: datetime,
        message: Message | None,
        ai_answers: dict[tuple[Any, ...], Any] | None = None,
    ) -> None:
        self.thread = thread
        self.now = now
        self.message = message
        contact = thread.contact
        tenant = thread.tenant
        self.ctx = RunContext(
            now=now,
            contact_name=contact.name or "",
            contact_phone=contact.phone or "",
            tenant_name=tenant.name,
            window_open=_window_open(thread, message, now),
            ai=ai.ThreadResponder(
                config=_LazyConfig(tenant),
                history=self._history,
                log_extra={"chat_thread": str(thread.pk), "tenant": str(tenant.pk)},
                answers=ai_answers,
                scope=message.pk if message is not None else None,
            ),
        )

    def _history(self, limit: int) -> list[tuple[str, str]]:
        """The thread's last `limit` messages before the current inbound one, oldest first."""
        queryset = Message.objects.filter(thread_id=self.thread.pk)
        if self.message is not None:
            queryset = queryset.filter(created_at__lte=self.message.created_at).exclude(
                pk=self.message.pk
            )
        rows = list(
            queryset.order_by("-created_at").only("direction", "text", "kind", "created_at")[:limit]
        )
        rows.reverse()
        return [
            (row.direction, row.text or (f"[{row.kind}]" if row.kind != "text" else ""))
            for row in rows
        ]

    def persist(
        self,
        session: FlowSession,
        definition: FlowDefinition,
        result: StepResult,
        *,
        create: bool = False,
    ) -> FlowRun:
        """Save the session after a step, record its events, return what it decided."""
        _apply_state(session, definition, result.state, self.now)
        handoff = next((e for e in result.events if e.type == EventType.HANDOFF), None)
        if handoff is not None:
            session.handed_off = True
        if create:
            session.save(force_insert=True)
        else:
            session.save(update_fields=_SESSION_FIELDS)
        _record_events(session, result, self.now)
        if session.status == SessionStatus.COMPLETED and not session.handed_off:
            webhook_events.flow_completed(session)  # a handoff is not a completion
        return FlowRun(
            replies=_replies(result),
            handoff=None
            if handoff is None
            else FlowHandoff(
                reason=str(handoff.data.get("reason") or "")[:500],
                flow_id=session.flow_id,
                at=self.now,
            ),
        )


class _LazyConfig:
    """The tenant's project config, read only when the AI prompt needs it."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant
        self._loaded = False
        self._config: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if not self._loaded:
            self._config = getattr(self._tenant, "config", None)
            self._loaded = True
        return getattr(self._config, name, "")


def _definition_or_none(flow_pk: Any, definition: dict | None = None) -> FlowDefinition | None:
    try:
        return selectors.flow_definition_parsed(flow_pk=flow_pk, definition=definition)
    except (FlowValidationError, Flow.DoesNotExist):
        logger.error("stored flow version cannot be loaded", extra={"flow": str(flow_pk)})
        return None


def flow_handle_inbound(
    *,
    thread: ChatThread,
    message: Message,
    ai_answers: dict[tuple[Any, ...], Any] | None = None,
) -> FlowRun:
    """Run the thread's automation for one stored inbound message; return what it decided
    (replies to store and send, a handoff to apply: `FlowRun`).

    Requires: called inside a transaction while holding the thread row lock
    (`conversations.services.process.thread_lock`), messages of one thread in the order
    received, and the message's consent keywords already applied (the pipeline answers them
    itself: `conversations.services.consent.consent_keyword_apply`). For a fixed query count,
    load the thread with `select_related("contact", "tenant")`.

    Order: an opted-out contact or a thread that needs a human gets nothing; a waiting
    session is expired when stale, interrupted by another active flow's keyword (unless its
    flow ignores keywords), else resumed; without a session a flow is selected (keyword, else
    weighted sticky default) and started. Never raises for model errors (the AI node falls back).

    With `ai_answers` (see `flows.ai.answer_key`) the model is never called here: a step that
    needs an answer not in the dict raises `AIAnswerNeeded` (the caller rolls back what this
    call wrote, gets the answer outside its transaction, and calls again).
    """
    now = timezone.now()
    contact = thread.contact
    tenant = thread.tenant
    if message.kind in NO_FLOW_KINDS:
        return FlowRun()
    text = message.text or ""
    inbound = _inbound_of(message)

    # (1) no consent, (2) a human has the conversation, or the tenant is switched off.
    if contact.is_opted_out or contact.erased_at is not None:
        return FlowRun()
    if thread.needs_human or not tenant.is_active:
        return FlowRun()

    runner = _Runner(thread=thread, now=now, message=message, ai_answers=ai_answers)

    # (3) a waiting session: expire, interrupt, or resume.
    session = selectors.flow_session_waiting(thread_id=thread.pk)
    if session is not None:
        run = _continue_waiting(runner, session, text, inbound)
        if run is not None:
            return run

    # (4) no session (or it just ended): select a flow and start it.
    return _select_and_start(runner, text, inbound)


def _continue_waiting(
    runner: _Runner, session: FlowSession, text: str, inbound: InboundMessage
) -> FlowRun | None:
    """Resume the waiting session with the message, or, when the message is another active
    flow's keyword, interrupt it and start that flow. None when the session ended instead
    (its version cannot be loaded: failed; stale: expired) and a flow is to be selected."""
    now, thread = runner.now, runner.thread
    definition = _definition_or_none(session.flow_id)
    state = _state_of(session)
    if definition is None:
        _fail_unloadable(session, state, now)
        return None
    if session_is_stale(definition, state, now):
        _end_session(session, expire_session(state), now)
        return None
    keyword_flow = _keyword_flow(session, thread, text)
    if keyword_flow is None:
        result = resume_session(definition, state, runner.ctx, inbound)
        return runner.persist(session, definition, result)
    _end_session(session, interrupt_session(state, "keyword"), now)
    return _start(runner, thread, keyword_flow, inbound)


def _fail_unloadable(session: FlowSession, state: SessionState, now: datetime) -> None:
    """End a session whose flow version can no longer be loaded, as failed."""
    session.status = SessionStatus.FAILED
    session.ended_at = now
    session.wait_expires_at = session.stale_at = session.waiting_since = None
    session.save(update_fields=_SESSION_FIELDS)
    _record_events(
        session,
        StepResult(
            state=state,
            outbound=[],
            events=[
                Event(
                    EventType.SESSION_FAILED,
                    {"node_id": session.current_node, "error": "unloadable version"},
                )
            ],
        ),
        now,
    )


def _keyword_flow(
    session: FlowSession, thread: ChatThread, text: str
) -> selectors.ActiveFlow | None:
    """Another active flow of the channel whose keyword `text` is; never while the waiting
    session's flow ignores keywords."""
    if session.flow.ignore_keywords or not text:
        return None
    others = [
        flow
        for flow in selectors.flow_candidates_active(channel_id=thread.channel_id)
        if flow.flow_id != session.flow.flow_id
    ]
    chosen = match_keyword_flow([f.as_candidate() for f in others], text)
    if chosen is None:
        return None
    return next(f for f in others if f.flow_id == chosen.key)


def _select_and_start(runner: _Runner, text: str, inbound: InboundMessage) -> FlowRun:
    """Select a flow for a thread without a session (keyword, else weighted sticky default)
    and start it; nothing when none applies."""
    thread = runner.thread
    active = selectors.flow_candidates_active(channel_id=thread.channel_id)
    if not active:
        return FlowRun()
    chosen = select_flow(
        [flow.as_candidate() for flow in active], text, f"{thread.contact.pk}:{thread.channel_id}"
    )
    if chosen is None:
        return FlowRun()
    flow = next(f for f in active if f.flow_id == chosen.key)
    return _start(runner, thread, flow, inbound)


def _start(
    runner: _Runner, thread: ChatThread, flow: selectors.ActiveFlow, inbound: InboundMessage | None
) -> FlowRun:
    definition = _definition_or_none(flow.pk)
    if definition is None:
        return FlowRun()
    result = start_session(definition, runner.ctx, inbound)
    session = FlowSession(tenant_id=thread.tenant_id, thread=thread, flow_id=flow.pk)
    return runner.persist(session, definition, result, create=True)


# --- timers ---------------------------------------------------------------------------------


def _reload_waiting(session_pk: Any, wait_seq: int) -> FlowSession | None:
    return (
        FlowSession.objects.select_related("flow")
        .defer("flow__definition")
        .filter(pk=session_pk, status=SessionStatus.WAITING, wait_seq=wait_seq)
        .first()
    )


def _answered_in_time(thread_id: Any, session: FlowSession) -> bool:
    """Whether the contact wrote before the wait's deadline and that message is not processed
    yet (a backlog, a crashed worker): it is the answer, and it goes first."""
    from conversations.models import Direction, Message

    pending = Message.objects.filter(
        thread_id=thread_id,
        direction=Direction.INBOUND,
        processed_at__isnull=True,
        created_at__lte=session.wait_expires_at,
    )
    if session.waiting_since is not None:
        pending = pending.filter(created_at__gt=session.waiting_since)
    return pending.exists()


def flow_fire_wait(
    *, thread: ChatThread, session_pk: Any, wait_seq: int, now: datetime
) -> FlowRun | None:
    """Fire the timeout of the session's wait number `wait_seq`; return what the flow decided,
    or None when nothing fired: the session answered, ended or moved to a new wait since it
    was found due; an unprocessed answer from before the deadline is pending (processing it
    answers the wait); or the engine finds it not due. A session whose thread a human took
    over, whose tenant was switched off or whose contact withdrew consent is interrupted
    instead (its timer must not keep coming back); one whose version cannot be loaded too.

    Requires the thread row lock (`conversations.services.process.thread_lock`), the thread
    loaded with its contact and tenant.
    """
    session = _reload_waiting(session_pk, wait_seq)
    if session is None:
        return None  # answered, ended or moved to a new wait since the query
    definition = _definition_or_none(session.flow_id)
    state = _state_of(session)
    if definition is None:
        _end_session(session, interrupt_session(state, "unloadable"), now)
        return None
    contact = thread.contact
    paused = thread.needs_human or not thread.tenant.is_active
    if paused or contact.is_opted_out or contact.erased_at is not None:
        # A human took over, the tenant was switched off, or consent went while the
        # question waited: the flow must not speak again, and its timer must not keep
        # coming back.
        _end_session(session, interrupt_session(state, "paused"), now)
        return None
    if _answered_in_time(thread.pk, session):
        return None  # the reply came before the deadline: processing it answers the wait
    runner = _Runner(thread=thread, now=now, message=None)
    result = fire_timeout(definition, state, runner.ctx, wait_seq)
    if result.state == state and not result.events:
        return None  # not due by the engine's rules (e.g. the node lost its timeout)
    return runner.persist(session, definition, result)


def flow_expire_stale_wait(*, session_pk: Any, wait_seq: int, now: datetime) -> bool:
    """End, silently, the session's wait number `wait_seq` when it is still that wait and
    past its flow's `session_timeout_seconds`; return whether it ended. Requires the thread
    row lock."""
    session = _reload_waiting(session_pk, wait_seq)
    if session is None:
        return False
    definition = _definition_or_none(session.flow_id)
    state = _state_of(session)
    if definition is not None and not session_is_stale(definition, state, now):
        return False
    _end_session(session, expire_session(state), now)
    return True


def flow_sessions_interrupt(*, thread: ChatThread, reason: str, now: datetime) -> int:
    """End the thread's waiting session, silently, because a human took the conversation
    (`reason` is recorded in the log line, e.g. ``"agent"``). Returns how many ended (0 or 1).

    Requires the thread row lock (the caller holds it)."""
    session = selectors.flow_session_waiting(thread_id=thread.pk)
    if session is None:
        return 0
    _end_session(session, interrupt_session(_state_of(session), reason), now)
    return 1
