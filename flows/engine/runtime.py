"""Running a flow: definition + state + inbound message in, new state + outbound + events out.

Everything here is pure: no clock (times come in through :class:`RunContext`), no I/O, and the
caller's :class:`SessionState` is never mutated (each step works on a copy). The only foreign code
called is the AI responder, whose every failure is absorbed (the webhook never fails because of
the model).

Guarantees of every step function:

- it returns; it does not raise for any validated definition and any state it produced;
- it enters at most :data:`MAX_NODES_PER_STEP` nodes; past that the session fails, a
  ``session_failed`` event says where, and the step's outbound messages are dropped (nothing is
  sent for the message that hit the limit; see :func:`_Step.fail`);
- a session that leaves the step is ``waiting`` or finished (``completed``/``failed``), never
  ``active``; a finished session has no wait fields set;
- each step ends a session with exactly one terminal event: ``session_completed``, ``handoff``,
  ``session_failed``, ``session_expired`` or ``session_interrupted``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .answers import STRUCTURED_RULES, check_answer
from .conditions import evaluate
from .definition import (
    AINode,
    BranchNode,
    EndNode,
    FlowDefinition,
    HandoffNode,
    InputNode,
    MessageNode,
    Node,
    QuestionChoice,
    QuestionNode,
    SetNode,
    WaitingNode,
)
from .templates import TemplateContext, render
from .text import is_keyword, match_term, normalize

MAX_NODES_PER_STEP = 100
MAX_OUTBOUND_LENGTH = 4096


class Status:
    """Values of :attr:`SessionState.status`."""

    ACTIVE = "active"  # only while a step runs
    WAITING = "waiting"
    COMPLETED = "completed"
    EXPIRED = "expired"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    FINISHED = frozenset({COMPLETED, EXPIRED, FAILED, INTERRUPTED})


class EventType:
    """Values of :attr:`Event.type`."""

    SESSION_STARTED = "session_started"
    SESSION_COMPLETED = "session_completed"
    HANDOFF = "handoff"
    SESSION_EXPIRED = "session_expired"
    SESSION_FAILED = "session_failed"
    SESSION_INTERRUPTED = "session_interrupted"
    VARIABLE_SET = "variable_set"
    TIMEOUT = "timeout"
    AI_ANSWERED = "ai_answered"
    AI_ERROR = "ai_error"
    NODE_ENTERED = "node_entered"
    NODE_EXITED = "node_exited"

    #: The route a session takes through the graph, recorded for the flow diagram's counts.
    PATH = frozenset({NODE_ENTERED, NODE_EXITED})


# --- messages in and out ------------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    """A contact's message: its text (``None`` for media without caption), for a button or
    list reply the id of the chosen option, its ``kind`` (``text``, ``location``,
    ``flow_reply``, ...) and, for a kind with structured content, that content in ``data``
    (a location: ``latitude``, ``longitude``, ``name``, ``address``; a flow reply: the form's
    answers as an object)."""

    text: str | None
    interactive_id: str | None = None
    kind: str = "text"
    data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Choice:
    """An option sent with a question (a reply button or list row, or a numbered line)."""

    id: str
    label: str


@dataclass(frozen=True)
class TemplateSend:
    """An approved WhatsApp template to send, its parameters rendered: by ``name`` and
    ``language`` (Cloud API) or by ``content_sid`` (Twilio)."""

    name: str = ""
    language: str = ""
    content_sid: str = ""
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboundMessage:
    """A message to send. ``sender`` is ``"flow"`` or ``"ai"``; ``text`` is at most 4096 chars.
    With ``template`` the message is that template (``text`` is the node's own text, kept
    for the record)."""

    text: str
    media_url: str | None = None
    choices: tuple[Choice, ...] = ()
    sender: str = "flow"
    template: TemplateSend | None = None


@dataclass(frozen=True)
class Event:
    """Something the adapter records or acts on (handoff, stats, logs). ``data`` is JSON-safe.

    Types and data: ``session_started`` (flow_id, node_id), ``session_completed`` (node_id,
    reason: ``"end"``, ``"no_next"`` or ``"invalid_reply"``), ``handoff`` (node_id, reason),
    ``session_expired`` (node_id), ``session_failed`` (node_id, error), ``session_interrupted``
    (node_id, reason), ``variable_set`` (node_id, name, value), ``timeout`` (node_id),
    ``ai_answered`` (node_id), ``ai_error`` (node_id, error).

    The path events trace the route: ``node_entered`` (node_id) each time the session enters a
    node, and ``node_exited`` (node_id, exit, to) each time it leaves one along an edge, where
    ``exit`` is the key :func:`flows.engine.graph.node_exits` gives that edge (``"next"``,
    ``"choice:<id>"``, ``"case:<n>"``, ``"default"``, ``"invalid"``, ``"timeout"``,
    ``"error"``). A node where the session ends or waits has no ``node_exited`` for that step.
    """

    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AIRequest:
    """What an AI responder is asked. ``instructions`` is already rendered; the responder adds
    the tenant's business description, audience and style, and the last ``history_messages``
    messages of the thread."""

    instructions: str
    language: str
    history_messages: int
    reply: str
    node_id: str


class AIError(Exception):
    """Raised by an AI responder when the model is not configured, fails or times out."""


class AIAnswerNeeded(Exception):  # noqa: N818 - a signal, not an error
    """Raised by an AI responder that answers later (outside the caller's transaction).

    The engine lets it through untouched, so the step is abandoned as a whole: the caller
    discards it, obtains the answer for `request`, and runs the same step again with a
    responder that returns that answer. Steps never change the state they were given.
    """

    def __init__(self, request: AIRequest, payload: object = None) -> None:
        super().__init__(request.node_id)
        self.request = request
        self.payload = payload


AIResponder = Callable[[AIRequest], str]


@dataclass(frozen=True)
class RunContext:
    """Everything a step needs from outside: the time, the contact, the tenant, the model."""

    now: datetime
    contact_name: str = ""
    contact_phone: str = ""
    tenant_name: str = ""
    ai: AIResponder | None = None
    # Whether the contact wrote within WhatsApp's 24-hour window (a message node with a
    # `whatsapp_template` sends the template when it is closed).
    window_open: bool = True


# --- session state ------------------------------------------------------------------------


def _datetime_to_json(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _datetime_from_json(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 string or null")
    return datetime.fromisoformat(value)


@dataclass
class SessionState:
    """Where a session is. Serialise with :meth:`to_dict`, restore with :meth:`from_dict`.

    ``node_id`` is the waiting node while ``status`` is ``waiting`` (else the last node entered).
    ``wait_seq`` increases on every new wait, including re-prompts after an invalid reply; a
    timer carries the ``wait_seq`` it was set for, so a late timer is recognised as stale.
    """

    status: str
    node_id: str | None
    variables: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    ai_turns: int = 0
    waiting_since: datetime | None = None
    wait_expires_at: datetime | None = None
    wait_seq: int = 0

    @property
    def is_waiting(self) -> bool:
        return self.status == Status.WAITING

    @property
    def is_finished(self) -> bool:
        return self.status in Status.FINISHED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy (datetimes as ISO 8601 strings)."""
        return {
            "status": self.status,
            "node_id": self.node_id,
            "variables": copy.deepcopy(self.variables),
            "retries": self.retries,
            "ai_turns": self.ai_turns,
            "waiting_since": _datetime_to_json(self.waiting_since),
            "wait_expires_at": _datetime_to_json(self.wait_expires_at),
            "wait_seq": self.wait_seq,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionState:
        """The inverse of :meth:`to_dict`. Raises ``ValueError`` on malformed data."""
        status = data.get("status")
        node_id = data.get("node_id")
        variables = data.get("variables", {})
        counters = {key: data.get(key, 0) for key in ("retries", "ai_turns", "wait_seq")}
        if not isinstance(status, str):
            raise ValueError("status must be a string")
        if node_id is not None and not isinstance(node_id, str):
            raise ValueError("node_id must be a string or null")
        if not isinstance(variables, Mapping):
            raise ValueError("variables must be an object")
        for key, value in counters.items():
            if type(value) is not int:
                raise ValueError(f"{key} must be an integer")
        return cls(
            status=status,
            node_id=node_id,
            variables=copy.deepcopy(dict(variables)),
            retries=counters["retries"],
            ai_turns=counters["ai_turns"],
            waiting_since=_datetime_from_json(data.get("waiting_since"), "waiting_since"),
            wait_expires_at=_datetime_from_json(data.get("wait_expires_at"), "wait_expires_at"),
            wait_seq=counters["wait_seq"],
        )

    def copy(self) -> SessionState:
        """A deep copy, safe to change without touching this one."""
        return replace(self, variables=copy.deepcopy(self.variables))


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step: the new state, what to send (in order), what happened."""

    state: SessionState
    outbound: list[OutboundMessage]
    events: list[Event]


# --- the step machine ---------------------------------------------------------------------


def _cut(text: str) -> str:
    return text[:MAX_OUTBOUND_LENGTH]


def _numbered_options(choices: list[QuestionChoice]) -> str:
    return "\n".join(f"{number}. {choice.label}" for number, choice in enumerate(choices, 1))


def match_choice(node: QuestionNode, inbound: InboundMessage) -> QuestionChoice | None:
    """The choice a reply picks, or ``None``.

    An interactive reply matches by choice id. A text reply, normalised, matches a choice's id,
    label or one of its keywords (first choice in order wins), and only then a 1-based number,
    so a keyword such as ``"1"`` is never shadowed by a position. A reply made only of
    symbols (an emoji) matches a term made of the same symbols (``match_term``).
    """
    if inbound.interactive_id is not None:
        wanted = normalize(inbound.interactive_id)
        for choice in node.choices:
            if inbound.interactive_id == choice.id or (wanted and wanted == normalize(choice.id)):
                return choice
    reply = match_term(inbound.text or "")
    if not reply:
        return None
    for choice in node.choices:
        terms = (choice.id, choice.label, *choice.keywords)
        if any(reply == match_term(term) for term in terms):
            return choice
    for number, choice in enumerate(node.choices, 1):
        if reply == str(number):
            return choice
    return None


class _Step:
    """One step of one session: accumulates outbound messages and events on a copy of the state."""

    def __init__(
        self, definition: FlowDefinition, state: SessionState, ctx: RunContext, input_text: str
    ) -> None:
        self.definition = definition
        self.state = state.copy()
        self.ctx = ctx
        self.input_text = input_text
        self.outbound: list[OutboundMessage] = []
        self.events: list[Event] = []
        self.entered = 0

    # results and endings

    def result(self) -> StepResult:
        return StepResult(state=self.state, outbound=self.outbound, events=self.events)

    def emit(self, event_type: str, **data: Any) -> None:
        self.events.append(Event(type=event_type, data=data))

    def send(
        self,
        text: str,
        *,
        media_url: str | None = None,
        choices: tuple[Choice, ...] = (),
        sender: str = "flow",
    ) -> None:
        """Queue a message. A text that renders empty (a template whose variables are all
        unset) is not sent on its own: WhatsApp refuses empty messages. Choices then carry
        their numbered labels as the text; media goes out without a caption."""
        if not text.strip():
            if choices:
                text = "\n".join(f"{n}. {c.label}" for n, c in enumerate(choices, start=1))
            elif not media_url:
                return
            else:
                text = ""
        self.outbound.append(
            OutboundMessage(text=_cut(text), media_url=media_url, choices=choices, sender=sender)
        )

    def render(self, template: str) -> str:
        return render(
            template,
            TemplateContext(
                contact_name=self.ctx.contact_name,
                contact_phone=self.ctx.contact_phone,
                tenant_name=self.ctx.tenant_name,
                input=self.input_text,
                variables=self.state.variables,
            ),
        )

    def _finish(self, status: str) -> None:
        self.state.status = status
        self.state.retries = 0
        self.state.waiting_since = None
        self.state.wait_expires_at = None

    def complete(self, node_id: str, reason: str) -> None:
        self._finish(Status.COMPLETED)
        self.emit(EventType.SESSION_COMPLETED, node_id=node_id, reason=reason)

    def fail(self, node_id: str | None, error: str) -> None:
        """End the session as ``failed`` and drop this step's outbound messages.

        The spec says nothing more is sent for a message that hits the node limit. The engine
        returns everything at once, so nothing of this step has been sent yet; dropping it all
        keeps a runaway flow from sending up to 100 messages to the contact before failing.
        Events already emitted stay: they describe what happened (e.g. ``session_started``).
        """
        self._finish(Status.FAILED)
        self.outbound.clear()
        self.emit(EventType.SESSION_FAILED, node_id=node_id, error=error)

    def set_variable(self, node_id: str, name: str, value: Any) -> None:
        self.state.variables[name] = value
        self.emit(EventType.VARIABLE_SET, node_id=node_id, name=name, value=value)

    def wait(self, node: WaitingNode) -> None:
        """Start a new wait at ``node`` (a new ``wait_seq``, a new deadline)."""
        self.state.status = Status.WAITING
        self.state.node_id = node.id
        self.state.waiting_since = self.ctx.now
        self.state.wait_seq += 1
        timeout = None if isinstance(node, AINode) else node.timeout
        self.state.wait_expires_at = (
            self.ctx.now + timedelta(seconds=timeout.seconds) if timeout else None
        )

    # moving through the graph

    def advance(self, node_id: str | None, *, from_node: str, exit: str | None) -> None:
        """Leave ``from_node`` by ``exit``, enter ``node_id`` and keep going until the session
        waits or finishes. ``exit`` is ``None`` only for the start node (nothing was left).

        ``None`` means the flow has nowhere to go: the session completes at ``from_node``.
        """
        target = node_id
        if target is None:
            self.complete(from_node, "no_next")
            return
        if exit is not None:
            self.emit(EventType.NODE_EXITED, node_id=from_node, exit=exit, to=target)
        while target is not None:
            if self.entered >= MAX_NODES_PER_STEP:
                self.fail(
                    target,
                    f"one message advanced the session through more than {MAX_NODES_PER_STEP} "
                    "nodes",
                )
                return
            node = self.definition.get_node(target)
            if node is None:
                self.fail(target, f'unknown node "{target}"')
                return
            self.entered += 1
            self.state.status = Status.ACTIVE
            self.state.node_id = node.id
            self.state.waiting_since = None
            self.state.wait_expires_at = None
            self.emit(EventType.NODE_ENTERED, node_id=node.id)
            target, exit = self.enter(node)
            if target is not None:
                self.emit(EventType.NODE_EXITED, node_id=node.id, exit=exit, to=target)

    def send_message(self, node: MessageNode) -> None:
        """A message node's text, or its approved template where the node says so: always,
        or (`window_closed`) when the 24-hour window is closed."""
        template = node.whatsapp_template
        if template is None or (node.send_template != "always" and self.ctx.window_open):
            self.send(self.render(node.text), media_url=node.media_url)
            return
        self.outbound.append(
            OutboundMessage(
                text=_cut(self.render(node.text)),
                template=TemplateSend(
                    name=template.name or "",
                    language=template.language or "",
                    content_sid=template.content_sid or "",
                    parameters=tuple(self.render(p) for p in template.parameters),
                ),
            )
        )

    def enter(self, node: Node) -> tuple[str | None, str]:
        """Run ``node``; return the next node to enter (``None`` when waiting or finished) and
        the exit taken to it."""
        if isinstance(node, MessageNode):
            self.send_message(node)
            if node.next is None:
                self.complete(node.id, "no_next")
            return node.next, "next"
        if isinstance(node, QuestionNode):
            self.state.retries = 0
            self.send(self.render(node.text), choices=_choices(node))
            self.wait(node)
            return None, ""
        if isinstance(node, InputNode):
            self.state.retries = 0
            self.send(self.render(node.text))
            self.wait(node)
            return None, ""
        if isinstance(node, BranchNode):
            for number, case in enumerate(node.cases, 1):
                if evaluate(case.when, self.state.variables, self.input_text):
                    return case.next, f"case:{number}"
            return node.default, "default"
        if isinstance(node, SetNode):
            rendered = {name: self.render(value) for name, value in node.values.items()}
            for name, value in rendered.items():
                self.set_variable(node.id, name, value)
            return node.next, "next"
        if isinstance(node, AINode):
            self.state.ai_turns = 0
            if node.text is not None:
                self.send(self.render(node.text))
            self.wait(node)
            return None, ""
        if isinstance(node, HandoffNode):
            if node.text is not None:
                self.send(self.render(node.text))
            self._finish(Status.COMPLETED)
            self.emit(EventType.HANDOFF, node_id=node.id, reason=node.reason)
            return None, ""
        if isinstance(node, EndNode):
            if node.text is not None:
                self.send(self.render(node.text))
            self.complete(node.id, "end")
            return None, ""
        self.fail(getattr(node, "id", None), "unsupported node type")  # pragma: no cover
        return None, ""

    # replies to waiting nodes

    def invalid_reply(self, node: QuestionNode | InputNode) -> None:
        """Re-prompt while retries remain; then ``on_invalid``, else the flow ends."""
        if self.state.retries < node.max_retries:
            self.state.retries += 1
            if isinstance(node, QuestionNode):
                if node.retry_text is not None:
                    self.send(self.render(node.retry_text), choices=_choices(node))
                else:
                    self.send(_numbered_options(node.choices))
            else:
                self.send(self.render(node.retry_text if node.retry_text else node.text))
            self.wait(node)
            return
        if node.on_invalid is not None:
            self.advance(node.on_invalid, from_node=node.id, exit="invalid")
        else:
            self._finish(Status.COMPLETED)
            self.emit(EventType.SESSION_COMPLETED, node_id=node.id, reason="invalid_reply")

    def answer_question(self, node: QuestionNode, inbound: InboundMessage) -> None:
        choice = match_choice(node, inbound)
        if choice is None:
            self.invalid_reply(node)
            return
        if node.save_as is not None:
            self.set_variable(node.id, node.save_as, choice.id)
        self.advance(choice.next, from_node=node.id, exit=f"choice:{choice.id}")

    def answer_input(self, node: InputNode, inbound: InboundMessage) -> None:
        if node.validate_ in STRUCTURED_RULES:
            # The answer is the message's structured content, stored as is (an object).
            if inbound.kind != node.validate_ or not inbound.data:
                self.invalid_reply(node)
                return
            self.set_variable(node.id, node.save_as, dict(inbound.data))
            self.advance(node.next, from_node=node.id, exit="next")
            return
        answer = check_answer(node.validate_, inbound.text, self.definition.language)
        if not answer.valid:
            self.invalid_reply(node)
            return
        self.set_variable(node.id, node.save_as, answer.value)
        self.advance(node.next, from_node=node.id, exit="next")

    def answer_ai(self, node: AINode, inbound: InboundMessage) -> None:
        reply = inbound.text or ""
        if node.exit_keywords and is_keyword(reply, node.exit_keywords):
            self.advance(node.next, from_node=node.id, exit="next")
            return
        try:
            if self.ctx.ai is None:
                raise AIError("no language model is configured")
            request = AIRequest(
                instructions=self.render(node.instructions),
                language=self.definition.language,
                history_messages=node.history_messages,
                reply=reply,
                node_id=node.id,
            )
            answer = self.ctx.ai(request)
            if not isinstance(answer, str) or not answer.strip():
                raise AIError("the model returned an empty answer")
        except AIAnswerNeeded:
            raise
        except Exception as exc:  # any responder failure: the webhook never fails for the model
            self.emit(EventType.AI_ERROR, node_id=node.id, error=_describe_error(exc))
            if node.fallback_text is not None:
                self.send(self.render(node.fallback_text))
            if node.on_error is not None:
                self.advance(node.on_error, from_node=node.id, exit="error")
            else:
                self.wait(node)
            return
        answer = _cut(answer.strip())
        self.emit(EventType.AI_ANSWERED, node_id=node.id)
        self.send(answer, sender="ai")
        if node.save_as is not None:
            self.set_variable(node.id, node.save_as, answer)
        self.state.ai_turns += 1
        if self.state.ai_turns >= node.max_turns:
            self.advance(node.next, from_node=node.id, exit="next")
        else:
            self.wait(node)


def _choices(node: QuestionNode) -> tuple[Choice, ...]:
    return tuple(Choice(id=choice.id, label=choice.label) for choice in node.choices)


def _describe_error(exc: BaseException) -> str:
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:500]


def _unchanged(state: SessionState) -> StepResult:
    return StepResult(state=state.copy(), outbound=[], events=[])


# --- public step functions ----------------------------------------------------------------


def start_session(
    definition: FlowDefinition, ctx: RunContext, inbound: InboundMessage | None
) -> StepResult:
    """Start a new session at ``definition.start``.

    ``inbound`` is the message that started it (its text is ``{{ input }}`` and what ``input``
    conditions see); it is not an answer to the first node. Emits ``session_started`` first.
    """
    state = SessionState(status=Status.ACTIVE, node_id=definition.start)
    step = _Step(definition, state, ctx, _input_text(inbound))
    step.emit(EventType.SESSION_STARTED, flow_id=definition.flow_id, node_id=definition.start)
    step.advance(definition.start, from_node=definition.start, exit=None)
    return step.result()


def resume_session(
    definition: FlowDefinition,
    state: SessionState,
    ctx: RunContext,
    inbound: InboundMessage,
) -> StepResult:
    """Handle a reply to a waiting session.

    Requires ``state`` to be ``waiting``; for any other status it returns the state unchanged
    with no output. The caller is expected to check :func:`session_is_stale` first (a stale
    session is expired, not resumed). A state whose node is missing from ``definition`` (a
    mismatched version) fails the session.
    """
    if state.status != Status.WAITING:
        return _unchanged(state)
    step = _Step(definition, state, ctx, _input_text(inbound))
    node = definition.get_node(state.node_id)
    if isinstance(node, QuestionNode):
        step.answer_question(node, inbound)
    elif isinstance(node, InputNode):
        step.answer_input(node, inbound)
    elif isinstance(node, AINode):
        step.answer_ai(node, inbound)
    else:
        step.fail(state.node_id, f'session waits at "{state.node_id}", which is not a waiting node')
    return step.result()


def fire_timeout(
    definition: FlowDefinition, state: SessionState, ctx: RunContext, wait_seq: int
) -> StepResult:
    """Fire the timeout of the wait numbered ``wait_seq``, if it is still current.

    It fires only when the session is still ``waiting`` with the same ``wait_seq`` at a node that
    has a ``timeout``, and ``ctx.now`` has reached the deadline; then the flow goes on at
    ``timeout.next`` (with an empty ``input``) after a ``timeout`` event. Otherwise (a late or
    early timer) the state comes back unchanged with no output.
    """
    node = definition.get_node(state.node_id)
    if (
        state.status != Status.WAITING
        or state.wait_seq != wait_seq
        or not isinstance(node, QuestionNode | InputNode)
        or node.timeout is None
        or state.wait_expires_at is None
        or ctx.now < state.wait_expires_at
    ):
        return _unchanged(state)
    step = _Step(definition, state, ctx, "")
    step.emit(EventType.TIMEOUT, node_id=node.id)
    step.advance(node.timeout.next, from_node=node.id, exit="timeout")
    return step.result()


def session_is_stale(definition: FlowDefinition, state: SessionState, now: datetime) -> bool:
    """True when the session has waited longer than ``settings.session_timeout_seconds``.

    Only a waiting session at a node without its own ``timeout`` goes stale (a node timeout
    decides what happens instead). The caller then calls :func:`expire_session`.
    """
    if state.status != Status.WAITING or state.waiting_since is None:
        return False
    node = definition.get_node(state.node_id)
    if isinstance(node, QuestionNode | InputNode) and node.timeout is not None:
        return False
    limit = timedelta(seconds=definition.settings.session_timeout_seconds)
    return now - state.waiting_since > limit


def expire_session(state: SessionState) -> StepResult:
    """End a session as ``expired``, silently (a ``session_expired`` event, nothing sent)."""
    return _end_quietly(state, Status.EXPIRED, EventType.SESSION_EXPIRED, {})


def interrupt_session(state: SessionState, reason: str = "keyword") -> StepResult:
    """End a session as ``interrupted`` (another flow's keyword, an opt-out, an agent)."""
    return _end_quietly(
        state, Status.INTERRUPTED, EventType.SESSION_INTERRUPTED, {"reason": reason}
    )


def _end_quietly(
    state: SessionState, status: str, event_type: str, data: dict[str, Any]
) -> StepResult:
    if state.status in Status.FINISHED:
        return _unchanged(state)
    new_state = state.copy()
    new_state.status = status
    new_state.waiting_since = None
    new_state.wait_expires_at = None
    event = Event(type=event_type, data={"node_id": state.node_id, **data})
    return StepResult(state=new_state, outbound=[], events=[event])


def _input_text(inbound: InboundMessage | None) -> str:
    if inbound is None or inbound.text is None:
        return ""
    return inbound.text
