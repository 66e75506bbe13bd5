"""Writes for flows and the only adapter between Django and the pure-Python flow engine.

`flow_handle_inbound` turns one stored inbound message into the replies to send, applying
opt-out/opt-in keywords, automation pauses, session expiry, keyword interruption and flow
selection, and persists the session. Its database cost is small and fixed: the waiting session
(one query, with its flow version), the channel's active flows (cached, see
`flows.selectors`), the parsed definition (memoised per process) and the session write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from channels_app.models import ChannelInstance
from conversations.models import ChatThread, HandoffSource, Message
from conversations.services.consent import contact_opt_in, contact_opt_out
from conversations.services.handoffs import handoff_start
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
    ValidationIssue,
    expire_session,
    fire_timeout,
    interrupt_session,
    is_keyword,
    match_keyword_flow,
    normalize,
    parse_flow,
    resume_session,
    select_flow,
    session_is_stale,
    start_session,
    validate_flow,
)
from flows.engine import InputNode as _InputNode
from flows.models import Flow, FlowEvent, FlowEventKind, FlowSession, SessionStatus
from integrations import events as webhook_events
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# Sent once after an opt-out / opt-in keyword, in the flow's (else the tenant's) language.
# `{keyword}` is the tenant's first opt-in keyword; the sentence with it is left out when the
# tenant has none.
OPT_OUT_CONFIRMATION = {
    "en": "You have been unsubscribed and will not receive automated messages from us.",
    "pt": "Você não receberá mais mensagens automáticas nossas.",
    "es": "Has cancelado la suscripción y no recibirás más mensajes automáticos.",
}
OPT_OUT_RESUBSCRIBE_HINT = {
    "en": 'Reply "{keyword}" to subscribe again.',
    "pt": 'Responda "{keyword}" para voltar a receber.',
    "es": 'Responde "{keyword}" para suscribirte de nuevo.',
}
OPT_IN_CONFIRMATION = {
    "en": "You are subscribed again. Welcome back!",
    "pt": "Você voltou a receber nossas mensagens. Bem-vindo de volta!",
    "es": "Te has suscrito de nuevo. ¡Bienvenido de vuelta!",
}

_DUE_BATCH = 500


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


# --- flow versions --------------------------------------------------------------------------


def flow_validate(*, definition: Any) -> list[ValidationIssue]:
    """Every problem of a flow document, each with its JSON path; empty when valid."""
    return list(validate_flow(definition))


@transaction.atomic
def flow_create(
    *,
    tenant: Tenant,
    channel: ChannelInstance,
    definition: dict,
    activate: bool = True,
    created_by: Any = None,
) -> Flow:
    """Store a new version of `definition["flow_id"]` on `channel`.

    Guarantees: the whole definition is validated first and nothing is stored when it is
    invalid (`FlowValidationError` with every issue); versions of one (channel, flow_id) are
    1, 2, 3... without gaps or collisions, also under concurrent uploads (the channel row is
    locked while the next number is taken); with `activate`, the new version is the only
    active one of its flow_id on the channel. A channel of another tenant raises
    ValidationError. Sessions already running keep the version they started with.
    """
    parsed = parse_flow(definition)
    if channel.tenant_id != tenant.pk:
        raise ValidationError({"channel": "This channel does not belong to the tenant."})
    ChannelInstance.objects.select_for_update().only("pk").get(pk=channel.pk)
    latest = (
        Flow.all_objects.filter(channel=channel, flow_id=parsed.flow_id)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    )
    if activate:
        _deactivate_other_versions(channel_id=channel.pk, flow_id=parsed.flow_id)
    keywords: list[str] = []
    for keyword in parsed.trigger.keywords:
        value = normalize(keyword)
        if value and value not in keywords:
            keywords.append(value)
    flow = Flow.objects.create(
        tenant=tenant,
        channel=channel,
        flow_id=parsed.flow_id,
        version=(latest or 0) + 1,
        name=parsed.name,
        definition=definition,
        is_active=activate,
        trigger_keywords=keywords,
        trigger_match=parsed.trigger.match,
        is_default=parsed.trigger.default,
        weight=parsed.trigger.weight,
        ignore_keywords=parsed.settings.ignore_keywords,
        created_by=created_by,
    )
    _invalidate_on_commit(channel.pk)
    logger.info(
        "flow version created",
        extra={"flow": str(flow.pk), "flow_id": flow.flow_id, "version": flow.version},
    )
    return flow


@transaction.atomic
def flow_set_active(*, flow: Flow, is_active: bool) -> Flow:
    """Activate or deactivate one flow version.

    Activating deactivates every other version of the same flow_id on the channel (at most one
    is active). Running sessions are not touched: they finish on their own version.
    """
    ChannelInstance.objects.select_for_update().only("pk").get(pk=flow.channel_id)
    if is_active:
        _deactivate_other_versions(
            channel_id=flow.channel_id, flow_id=flow.flow_id, keep_pk=flow.pk
        )
    if flow.is_active != is_active:
        flow.is_active = is_active
        flow.save(update_fields=["is_active", "updated_at"])
    _invalidate_on_commit(flow.channel_id)
    return flow


def _deactivate_other_versions(*, channel_id: Any, flow_id: str, keep_pk: Any = None) -> None:
    others = Flow.objects.filter(channel_id=channel_id, flow_id=flow_id, is_active=True)
    if keep_pk is not None:
        others = others.exclude(pk=keep_pk)
    others.update(is_active=False, updated_at=timezone.now())


def _invalidate_on_commit(channel_id: Any) -> None:
    """Drop the cached active flows now (this transaction's own reads see the change) and again
    after commit (a reader that cached the old rows meanwhile is overruled)."""
    selectors.flow_candidates_invalidate(channel_id=channel_id)
    transaction.on_commit(lambda: selectors.flow_candidates_invalidate(channel_id=channel_id))


# --- running flows --------------------------------------------------------------------------


def _language_key(language: str) -> str:
    return (language or "en").split("-")[0].lower()


def _localised(table: dict[str, str], language: str) -> str:
    return table.get(_language_key(language), table["en"])


def _opt_out_text(tenant: Tenant, language: str) -> str:
    text = _localised(OPT_OUT_CONFIRMATION, language)
    keywords = [k for k in (tenant.opt_in_keywords or []) if isinstance(k, str) and k.strip()]
    if keywords:
        hint = _localised(OPT_OUT_RESUBSCRIBE_HINT, language)
        text = f"{text} {hint.format(keyword=keywords[0].strip().upper())}"
    return text


def _tenant_language(tenant: Tenant) -> str:
    config = getattr(tenant, "config", None)
    return getattr(config, "language", "") or "en"


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
    from conversations.services.outbound import WINDOW, thread_window_open

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
    ) -> list[Reply]:
        """Save the session after a step, act on its events, return its replies."""
        _apply_state(session, definition, result.state, self.now)
        handoff = next((e for e in result.events if e.type == EventType.HANDOFF), None)
        if handoff is not None:
            session.handed_off = True
        if create:
            session.save(force_insert=True)
        else:
            session.save(update_fields=_SESSION_FIELDS)
        _record_events(session, result, self.now)
        if handoff is not None:
            self.thread.needs_human = True
            self.thread.handoff_reason = str(handoff.data.get("reason") or "")[:500]
            self.thread.save(update_fields=["needs_human", "handoff_reason", "updated_at"])
            handoff_start(
                thread=self.thread, source=HandoffSource.FLOW, now=self.now, flow_id=session.flow_id
            )
            webhook_events.thread_handoff(self.thread, reason=self.thread.handoff_reason, by="flow")
        if session.status == SessionStatus.COMPLETED and not session.handed_off:
            webhook_events.flow_completed(session)  # a handoff is not a completion
        return _replies(result)


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
) -> list[Reply]:
    """Run the thread's automation for one stored inbound message; return the replies.

    Requires: called inside a transaction while holding the thread row lock
    (`select_for_update`), messages of one thread in the order received. For a fixed query
    count, load the thread with `select_related("contact", "tenant")`.

    Order: an opt-out keyword revokes consent, interrupts a waiting session and answers one
    confirmation; an opt-in keyword from an opted-out contact restores consent and confirms
    (from anyone else it reaches the flow like any message); an opted-out contact or a
    thread that needs a human gets nothing; a waiting session is expired when stale,
    interrupted by another active flow's keyword (unless its flow ignores keywords), else
    resumed; without a session a flow is selected (keyword, else weighted sticky default) and
    started. Never raises for model errors (the AI node falls back).

    With `ai_answers` (see `flows.ai.answer_key`) the model is never called here: a step that
    needs an answer not in the dict raises `AIAnswerNeeded` (the caller rolls back what this
    call wrote, gets the answer outside its transaction, and calls again).
    """
    now = timezone.now()
    contact = thread.contact
    tenant = thread.tenant
    if message.kind in NO_FLOW_KINDS:
        return []
    text = message.text or ""
    inbound = _inbound_of(message)

    # (1) opt-out, (2) opt-in: consent comes before any flow.
    if text and is_keyword(text, tenant.opt_out_keywords or []):
        session = selectors.flow_session_waiting(thread_id=thread.pk)
        language = ""
        if session is not None:
            definition = _definition_or_none(session.flow_id)
            language = definition.language if definition else ""
            _end_session(session, interrupt_session(_state_of(session), "opt_out"), now)
        contact_opt_out(contact=contact, source="keyword")
        logger.info("contact opted out by keyword", extra={"chat_thread": str(thread.pk)})
        return [Reply(text=_opt_out_text(tenant, language or _tenant_language(tenant)))]
    # An opt-in keyword restores consent, so it only means that for a contact who opted out;
    # from anyone else it is an ordinary message ("voltar" is a common menu answer, "start"
    # a common trigger).
    if text and contact.is_opted_out and is_keyword(text, tenant.opt_in_keywords or []):
        contact_opt_in(contact=contact, source="keyword")
        logger.info("contact opted in by keyword", extra={"chat_thread": str(thread.pk)})
        return [Reply(text=_localised(OPT_IN_CONFIRMATION, _tenant_language(tenant)))]

    # (3) no consent, (4) a human has the conversation, or the tenant is switched off.
    if contact.is_opted_out or contact.erased_at is not None:
        return []
    if thread.needs_human or not tenant.is_active:
        return []

    runner = _Runner(thread=thread, now=now, message=message, ai_answers=ai_answers)

    # (5) a waiting session: expire, interrupt, or resume.
    session = selectors.flow_session_waiting(thread_id=thread.pk)
    if session is not None:
        definition = _definition_or_none(session.flow_id)
        state = _state_of(session)
        if definition is None:
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
            session = None
        elif session_is_stale(definition, state, now):
            _end_session(session, expire_session(state), now)
            session = None
        else:
            keyword_flow = None
            if not session.flow.ignore_keywords and text:
                others = [
                    flow
                    for flow in selectors.flow_candidates_active(channel_id=thread.channel_id)
                    if flow.flow_id != session.flow.flow_id
                ]
                chosen = match_keyword_flow([f.as_candidate() for f in others], text)
                if chosen is not None:
                    keyword_flow = next(f for f in others if f.flow_id == chosen.key)
            if keyword_flow is None:
                result = resume_session(definition, state, runner.ctx, inbound)
                return runner.persist(session, definition, result)
            _end_session(session, interrupt_session(state, "keyword"), now)
            return _start(runner, thread, keyword_flow, inbound)

    # (6) no session: select a flow and start it.
    active = selectors.flow_candidates_active(channel_id=thread.channel_id)
    if not active:
        return []
    chosen = select_flow(
        [flow.as_candidate() for flow in active], text, f"{contact.pk}:{thread.channel_id}"
    )
    if chosen is None:
        return []
    flow = next(f for f in active if f.flow_id == chosen.key)
    return _start(runner, thread, flow, inbound)


def _start(
    runner: _Runner, thread: ChatThread, flow: selectors.ActiveFlow, inbound: InboundMessage | None
) -> list[Reply]:
    definition = _definition_or_none(flow.pk)
    if definition is None:
        return []
    result = start_session(definition, runner.ctx, inbound)
    session = FlowSession(tenant_id=thread.tenant_id, thread=thread, flow_id=flow.pk)
    return runner.persist(session, definition, result, create=True)


# --- timers ---------------------------------------------------------------------------------


def _lock_thread(thread_id: Any) -> ChatThread | None:
    """Lock a thread row, skipping it when another worker holds it (it will move it on)."""
    queryset = ChatThread.objects.select_related("contact", "tenant")
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    elif connection.features.has_select_for_update:
        queryset = queryset.select_for_update()
    return queryset.filter(pk=thread_id).first()


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


def _fire_one(session_pk: Any, thread_id: Any, wait_seq: int, now: datetime) -> bool:
    from conversations.services.outbound import replies_store

    with transaction.atomic():
        thread = _lock_thread(thread_id)
        if thread is None:
            return False
        session = _reload_waiting(session_pk, wait_seq)
        if session is None:
            return False  # answered, ended or moved to a new wait since the query
        definition = _definition_or_none(session.flow_id)
        state = _state_of(session)
        if definition is None:
            _end_session(session, interrupt_session(state, "unloadable"), now)
            return False
        contact = thread.contact
        paused = thread.needs_human or not thread.tenant.is_active
        if paused or contact.is_opted_out or contact.erased_at is not None:
            # A human took over, the tenant was switched off, or consent went while the
            # question waited: the flow must not speak again, and its timer must not keep
            # coming back.
            _end_session(session, interrupt_session(state, "paused"), now)
            return False
        if _answered_in_time(thread_id, session):
            return False  # the reply came before the deadline: processing it answers the wait
        runner = _Runner(thread=thread, now=now, message=None)
        result = fire_timeout(definition, state, runner.ctx, wait_seq)
        if result.state == state and not result.events:
            return False  # not due by the engine's rules (e.g. the node lost its timeout)
        replies = runner.persist(session, definition, result)
        if replies:
            replies_store(thread=thread, replies=replies)
        return True


def flow_fire_due_timeouts(*, now: datetime | None = None, expire_stale: bool = True) -> int:
    """Fire every due question/input timeout; return how many fired.

    Each session is handled in its own transaction under its thread's row lock, re-read there,
    and fired only for the wait it was due for (`wait_seq`), so a late timer never moves a
    conversation that already went on, and two workers never fire the same wait. Replies are
    stored (and sent after commit) through `conversations.services.outbound.replies_store`.
    With `expire_stale`, stale sessions are expired too (see `flow_expire_stale_sessions`).
    """
    now = now or timezone.now()
    fired = 0
    for session_pk, thread_id, wait_seq in selectors.flow_sessions_due_timeouts(
        now=now, limit=_DUE_BATCH
    ):
        try:
            fired += int(_fire_one(session_pk, thread_id, wait_seq, now))
        except Exception:
            logger.exception("flow timeout failed", extra={"session": str(session_pk)})
    if expire_stale:
        flow_expire_stale_sessions(now=now)
    return fired


def flow_expire_stale_sessions(*, now: datetime) -> int:
    """End, silently, waiting sessions past their flow's `session_timeout_seconds`.

    Only waits without a node timeout go stale. Each session is re-checked under its thread's
    row lock. Returns how many were expired.
    """
    expired = 0
    for session_pk, thread_id, wait_seq in selectors.flow_sessions_stale(now=now, limit=_DUE_BATCH):
        with transaction.atomic():
            if _lock_thread(thread_id) is None:
                continue
            session = _reload_waiting(session_pk, wait_seq)
            if session is None:
                continue
            definition = _definition_or_none(session.flow_id)
            state = _state_of(session)
            if definition is not None and not session_is_stale(definition, state, now):
                continue
            _end_session(session, expire_session(state), now)
            expired += 1
    return expired


def flow_sessions_interrupt(*, thread: ChatThread, reason: str, now: datetime) -> int:
    """End the thread's waiting session, silently, because a human took the conversation
    (`reason` is recorded in the log line, e.g. ``"agent"``). Returns how many ended (0 or 1).

    Requires the thread row lock (the caller holds it)."""
    session = selectors.flow_session_waiting(thread_id=thread.pk)
    if session is None:
        return 0
    _end_session(session, interrupt_session(_state_of(session), reason), now)
    return 1
