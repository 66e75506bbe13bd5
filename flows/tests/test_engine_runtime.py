"""Running flows: every node type, retries, timeouts, the AI node, the node limit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flows.engine import (
    AIError,
    AIRequest,
    Choice,
    EventType,
    FlowDefinition,
    InboundMessage,
    RunContext,
    SessionState,
    StepResult,
    expire_session,
    fire_timeout,
    interrupt_session,
    parse_flow,
    resume_session,
    session_is_stale,
    start_session,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
CTX = RunContext(now=NOW, contact_name="Ana", contact_phone="+5511988887777", tenant_name="Acme")


def build(*nodes: dict[str, Any], **top: Any) -> FlowDefinition:
    document: dict[str, Any] = {
        "schema_version": 1,
        "flow_id": "test",
        "name": "Test",
        "start": nodes[0]["id"],
        "nodes": list(nodes),
    }
    document.update(top)
    return parse_flow(document)


def texts(result: StepResult) -> list[str]:
    return [message.text for message in result.outbound]


def event_types(result: StepResult) -> list[str]:
    """The outcome events, without the path (``node_entered``/``node_exited``): see
    ``test_engine_path.py`` for those."""
    return [event.type for event in result.events if event.type not in EventType.PATH]


def reply(
    definition: FlowDefinition, result: StepResult, text: str | None, **kw: Any
) -> StepResult:
    ctx = kw.pop("ctx", CTX)
    return resume_session(definition, result.state, ctx, InboundMessage(text, **kw))


END = {"id": "done", "type": "end", "text": "Bye {{ contact.name }}"}


def question(**overrides: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": "ask",
        "type": "question",
        "text": "Pick",
        "choices": [
            {"id": "yes", "label": "Yes please", "keywords": ["sure"], "next": "said_yes"},
            {"id": "no", "label": "No", "next": "said_no"},
        ],
        "save_as": "answer",
    }
    node.update(overrides)
    return node


YES = {"id": "said_yes", "type": "end", "text": "yes={{ vars.answer }}"}
NO = {"id": "said_no", "type": "end", "text": "no"}


# --- message, end, set, templates --------------------------------------------------------------


def test_message_then_end_renders_templates() -> None:
    # given
    definition = build(
        {
            "id": "hi",
            "type": "message",
            "text": "Hi {{contact.name}} ({{ contact.phone }}) from {{ tenant.name }}: {{ input }}",
            "media_url": "https://cdn.example.com/a.png",
            "next": "done",
        },
        END,
    )
    # when
    result = start_session(definition, CTX, InboundMessage("hello there"))
    # then
    assert texts(result) == ["Hi Ana (+5511988887777) from Acme: hello there", "Bye Ana"]
    assert result.outbound[0].media_url == "https://cdn.example.com/a.png"
    assert result.state.status == "completed"
    assert event_types(result) == ["session_started", "session_completed"]
    assert result.events[-1].data == {"node_id": "done", "reason": "end"}


def test_message_without_next_ends_the_flow() -> None:
    definition = build({"id": "hi", "type": "message", "text": "only"})
    result = start_session(definition, CTX, None)
    assert texts(result) == ["only"]
    assert result.state.status == "completed"
    assert result.events[-1].data["reason"] == "no_next"


def test_set_renders_values_and_whole_numbers_without_decimals() -> None:
    definition = build(
        {
            "id": "age",
            "type": "input",
            "text": "Age?",
            "save_as": "age",
            "validate": "number",
            "next": "s",
        },
        {
            "id": "s",
            "type": "set",
            "values": {"label": "age {{ vars.age }}", "blank": ""},
            "next": "show",
        },
        {"id": "show", "type": "end", "text": "{{ vars.label }}|{{ vars.missing }}|{{ vars.age }}"},
    )
    started = start_session(definition, CTX, None)
    result = reply(definition, started, "30.0")
    assert texts(result) == ["age 30|  |30".replace("  ", "")]
    assert result.state.variables == {"age": 30.0, "label": "age 30", "blank": ""}
    assert [e.data["name"] for e in result.events if e.type == "variable_set"] == [
        "age",
        "label",
        "blank",
    ]


def test_end_without_text_sends_nothing() -> None:
    result = start_session(build({"id": "e", "type": "end"}), CTX, None)
    assert result.outbound == []
    assert result.state.status == "completed"


def test_handoff_sends_text_and_emits_event() -> None:
    definition = build({"id": "h", "type": "handoff", "text": "A human", "reason": "asked"})
    result = start_session(definition, CTX, None)
    assert texts(result) == ["A human"]
    assert result.state.status == "completed"
    assert event_types(result) == ["session_started", "handoff"]
    assert result.events[-1].data == {"node_id": "h", "reason": "asked"}


# --- question ----------------------------------------------------------------------------------


def test_question_sends_choices_and_waits() -> None:
    definition = build(question(), YES, NO)
    result = start_session(definition, CTX, InboundMessage("hi"))
    assert result.outbound[0].choices == (Choice("yes", "Yes please"), Choice("no", "No"))
    assert result.state.status == "waiting"
    assert result.state.node_id == "ask"
    assert result.state.waiting_since == NOW
    assert result.state.wait_seq == 1
    assert result.state.wait_expires_at is None


@pytest.mark.parametrize(
    "answer",
    ["yes", "YES!", "  Yes   Please. ", "yés please", "sure", "1", "Sure?"],
)
def test_question_matches_by_id_label_keyword_or_number(answer: str) -> None:
    definition = build(question(), YES, NO)
    result = reply(definition, start_session(definition, CTX, None), answer)
    assert texts(result) == ["yes=yes"]
    assert result.state.variables == {"answer": "yes"}


def test_question_matches_interactive_reply_by_id() -> None:
    definition = build(question(), YES, NO)
    result = reply(
        definition, start_session(definition, CTX, None), "whatever", interactive_id="no"
    )
    assert texts(result) == ["no"]


def test_keyword_beats_position_number() -> None:
    definition = build(
        question(
            choices=[
                {"id": "yes", "label": "Yes", "next": "said_yes"},
                {"id": "no", "label": "No", "keywords": ["1"], "next": "said_no"},
            ]
        ),
        YES,
        NO,
    )
    assert texts(reply(definition, start_session(definition, CTX, None), "1")) == ["no"]


def test_question_default_retry_is_numbered_options_then_on_invalid() -> None:
    # given a question with the default two retries and an on_invalid target
    definition = build(
        question(on_invalid="human"), YES, NO, {"id": "human", "type": "handoff", "reason": "lost"}
    )
    state = start_session(definition, CTX, None)
    # when three replies match nothing
    first = reply(definition, state, "maybe")
    second = reply(definition, first, "perhaps")
    third = reply(definition, second, "dunno")
    # then two retries are sent, and the third goes to on_invalid
    assert texts(first) == ["1. Yes please\n2. No"]
    assert first.state.retries == 1 and first.state.wait_seq == 2
    assert texts(second) == ["1. Yes please\n2. No"]
    assert second.state.retries == 2
    assert texts(third) == []
    assert event_types(third) == ["handoff"]


def test_question_custom_retry_text_carries_choices() -> None:
    definition = build(question(retry_text="Please pick, {{ contact.name }}"), YES, NO)
    result = reply(definition, start_session(definition, CTX, None), "?")
    assert texts(result) == ["Please pick, Ana"]
    assert len(result.outbound[0].choices) == 2


def test_max_retries_zero_goes_straight_to_on_invalid() -> None:
    definition = build(question(max_retries=0, on_invalid="said_no"), YES, NO)
    result = reply(definition, start_session(definition, CTX, None), "nope")
    assert texts(result) == ["no"]


def test_without_on_invalid_the_flow_ends() -> None:
    definition = build(question(max_retries=0), YES, NO)
    result = reply(definition, start_session(definition, CTX, None), "nope")
    assert result.outbound == []
    assert result.state.status == "completed"
    assert result.events[-1].data == {"node_id": "ask", "reason": "invalid_reply"}


def test_retries_reset_when_the_question_is_entered_again() -> None:
    definition = build(
        question(choices=[{"id": "again", "label": "Again", "next": "note"}], max_retries=1),
        {"id": "note", "type": "message", "text": "ok", "next": "ask"},
    )
    state = reply(definition, start_session(definition, CTX, None), "x")
    assert state.state.retries == 1
    again = reply(definition, state, "again")
    assert again.state.retries == 0
    assert texts(again) == ["ok", "Pick"]


def test_media_only_reply_is_invalid() -> None:
    definition = build(question(), YES, NO)
    result = reply(definition, start_session(definition, CTX, None), None)
    assert result.state.retries == 1


# --- input -------------------------------------------------------------------------------------


def input_flow(rule: Any, language: str = "en") -> FlowDefinition:
    return build(
        {
            "id": "ask",
            "type": "input",
            "text": "Value?",
            "save_as": "value",
            "validate": rule,
            "max_retries": 1,
            "next": "done",
        },
        {"id": "done", "type": "end"},
        language=language,
    )


@pytest.mark.parametrize(
    ("rule", "language", "answer", "stored"),
    [
        ("any", "en", "  hello  ", "hello"),
        ("email", "en", "ana@example.com", "ana@example.com"),
        ("number", "en", "42", 42),
        ("number", "en", "-3.5", -3.5),
        ("number", "pt-BR", "3,5", 3.5),
        ("phone", "en", "+55 (11) 98888-7777", "+5511988887777"),
        ("phone", "en", "0044 20 7946 0958", "+442079460958"),
        ("date", "en", "2026-12-01", "2026-12-01"),
        ("date", "pt-BR", "01/12/2026", "2026-12-01"),
        ("date", "es", "1-12-2026", "2026-12-01"),
        ("date", "en-GB", "01/12/2026", "2026-12-01"),
        ("date", "en-US", "12/01/2026", "2026-12-01"),
        ("date", "en", "12/01/2026", "2026-12-01"),
        ({"regex": "[A-Z]{3}\\d{3}"}, "en", "ABC123", "ABC123"),
    ],
)
def test_input_accepts_and_stores(rule: Any, language: str, answer: str, stored: Any) -> None:
    definition = input_flow(rule, language)
    result = reply(definition, start_session(definition, CTX, None), answer)
    assert result.state.status == "completed"
    assert result.state.variables["value"] == stored
    assert type(result.state.variables["value"]) is type(stored)


@pytest.mark.parametrize(
    ("rule", "language", "answer"),
    [
        ("any", "en", "   "),
        ("email", "en", "ana@"),
        ("email", "en", "ana example.com"),
        ("number", "en", "forty"),
        ("number", "en", "1,000"),
        ("number", "en", "nan"),
        ("number", "en", "9" * 5000),
        ("phone", "en", "98888-7777"),
        ("phone", "en", "+0123456789"),
        ("date", "en", "2026-02-30"),
        ("date", "pt-BR", "12/31/2026"),
        ("date", "en-US", "31/12/2026"),
        ("date", "en", "tomorrow"),
        ({"regex": "[A-Z]{3}\\d{3}"}, "en", "ABC1234"),
    ],
)
def test_input_rejects(rule: Any, language: str, answer: str) -> None:
    definition = input_flow(rule, language)
    result = reply(definition, start_session(definition, CTX, None), answer)
    assert result.state.status == "waiting"
    assert result.state.retries == 1
    assert texts(result) == ["Value?"]  # no retry_text: the question again


def test_input_retry_text_then_end() -> None:
    definition = build(
        {
            "id": "ask",
            "type": "input",
            "text": "Email?",
            "save_as": "email",
            "validate": "email",
            "retry_text": "Not an email: {{ input }}",
            "max_retries": 1,
            "next": "done",
        },
        {"id": "done", "type": "end"},
    )
    first = reply(definition, start_session(definition, CTX, None), "nope")
    assert texts(first) == ["Not an email: nope"]
    second = reply(definition, first, "still nope")
    assert second.state.status == "completed"
    assert "email" not in second.state.variables


# --- branch ------------------------------------------------------------------------------------


def branch_flow(when: dict[str, Any], variables: dict[str, Any] | None = None) -> FlowDefinition:
    values = {name: str(value) for name, value in (variables or {}).items()}
    set_node = [{"id": "init", "type": "set", "values": values, "next": "b"}] if values else []
    return build(
        *set_node,
        {"id": "b", "type": "branch", "cases": [{"when": when, "next": "hit"}], "default": "miss"},
        {"id": "hit", "type": "end", "text": "hit"},
        {"id": "miss", "type": "end", "text": "miss"},
    )


def decide(when: dict[str, Any], variables: dict[str, Any] | None = None, text: str = "") -> bool:
    result = start_session(branch_flow(when, variables), CTX, InboundMessage(text))
    return texts(result) == ["hit"]


@pytest.mark.parametrize(
    ("when", "variables", "text", "expected"),
    [
        ({"var": "x", "op": "eq", "value": "Olá"}, {"x": "OLA!"}, "", True),
        ({"var": "x", "op": "eq", "value": 18}, {"x": "18.0"}, "", True),
        ({"var": "x", "op": "eq", "value": "a"}, {"x": "b"}, "", False),
        ({"var": "x", "op": "eq", "value": ""}, None, "", True),
        ({"var": "x", "op": "ne", "value": "a"}, {"x": "b"}, "", True),
        ({"var": "x", "op": "ne", "value": "a"}, {"x": "A"}, "", False),
        ({"var": "x", "op": "in", "value": ["a", "b"]}, {"x": "B"}, "", True),
        ({"var": "x", "op": "in", "value": ["a", "b"]}, {"x": "c"}, "", False),
        ({"input": True, "op": "contains", "value": "human"}, None, "I want a HUMAN now", True),
        ({"input": True, "op": "contains", "value": ["agent", "human"]}, None, "agent!", True),
        ({"input": True, "op": "contains", "value": "human"}, None, "inhuman", False),
        ({"input": True, "op": "contains", "value": "free trial"}, None, "a Free trial?", True),
        ({"input": True, "op": "matches", "value": "^\\d{5}$"}, None, " 12345 ", True),
        ({"input": True, "op": "matches", "value": "^\\d{5}$"}, None, "1234", False),
        ({"var": "n", "op": "gt", "value": 3}, {"n": "4"}, "", True),
        ({"var": "n", "op": "gt", "value": 3}, {"n": "3"}, "", False),
        ({"var": "n", "op": "gte", "value": "3"}, {"n": "3"}, "", True),
        ({"var": "n", "op": "lt", "value": 3}, {"n": "2.5"}, "", True),
        ({"var": "n", "op": "lte", "value": 3}, {"n": "3.1"}, "", False),
        ({"var": "n", "op": "lt", "value": 3}, {"n": "two"}, "", False),
        ({"var": "n", "op": "gt", "value": 3}, None, "", False),
        ({"var": "n", "op": "exists"}, {"n": "x"}, "", True),
        ({"var": "n", "op": "exists"}, None, "", False),
        ({"input": True, "op": "exists"}, None, "  ", False),
        ({"input": True, "op": "exists"}, None, "hi", True),
        (
            {"all": [{"input": True, "op": "exists"}, {"var": "n", "op": "exists"}]},
            None,
            "x",
            False,
        ),
        ({"any": [{"input": True, "op": "exists"}, {"var": "n", "op": "exists"}]}, None, "x", True),
        ({"not": {"input": True, "op": "eq", "value": "x"}}, None, "x", False),
        ({"not": {"input": True, "op": "eq", "value": "x"}}, None, "y", True),
    ],
)
def test_branch_conditions(
    when: dict[str, Any], variables: dict[str, Any] | None, text: str, expected: bool
) -> None:
    assert decide(when, variables, text) is expected


def test_branch_cases_are_tried_in_order() -> None:
    definition = build(
        {
            "id": "b",
            "type": "branch",
            "default": "miss",
            "cases": [
                {"when": {"input": True, "op": "exists"}, "next": "first"},
                {"when": {"input": True, "op": "exists"}, "next": "second"},
            ],
        },
        {"id": "first", "type": "end", "text": "first"},
        {"id": "second", "type": "end", "text": "second"},
        {"id": "miss", "type": "end", "text": "miss"},
    )
    assert texts(start_session(definition, CTX, InboundMessage("x"))) == ["first"]
    assert texts(start_session(definition, CTX, InboundMessage(""))) == ["miss"]


def test_numbers_stored_by_input_compare_numerically() -> None:
    definition = build(
        {
            "id": "age",
            "type": "input",
            "text": "Age?",
            "save_as": "age",
            "validate": "number",
            "next": "b",
        },
        {
            "id": "b",
            "type": "branch",
            "default": "young",
            "cases": [{"when": {"var": "age", "op": "gte", "value": 18}, "next": "adult"}],
        },
        {"id": "adult", "type": "end", "text": "adult"},
        {"id": "young", "type": "end", "text": "young"},
    )
    started = start_session(definition, CTX, None)
    assert texts(reply(definition, started, "18")) == ["adult"]
    assert texts(reply(definition, started, "9")) == ["young"]


# --- timeouts and staleness --------------------------------------------------------------------


def test_timeout_fires_only_for_the_current_wait() -> None:
    # given a question with a one-hour timeout
    definition = build(question(timeout={"seconds": 3600, "next": "said_no"}), YES, NO)
    started = start_session(definition, CTX, None)
    deadline = NOW + dt.timedelta(hours=1)
    assert started.state.wait_expires_at == deadline
    late = RunContext(now=deadline)
    # when the timer fires too early, or for another wait, nothing happens
    early = fire_timeout(definition, started.state, RunContext(now=deadline - dt.timedelta(1)), 1)
    assert early.state == started.state and early.outbound == [] and early.events == []
    stale = fire_timeout(definition, started.state, late, 0)
    assert stale.outbound == [] and stale.state == started.state
    # a retry starts a new wait, so the first timer is stale
    retried = reply(definition, started, "hmm")
    assert fire_timeout(definition, retried.state, late, 1).outbound == []
    # when the current timer fires at its deadline
    fired = fire_timeout(definition, started.state, late, started.state.wait_seq)
    # then the flow goes on at timeout.next
    assert texts(fired) == ["no"]
    assert event_types(fired) == ["timeout", "session_completed"]
    # and after the session moved on, the same timer does nothing
    again = fire_timeout(definition, fired.state, late, started.state.wait_seq)
    assert again.outbound == [] and again.events == []


def test_timer_of_a_finished_or_answered_session_does_nothing() -> None:
    definition = build(question(timeout={"seconds": 60, "next": "said_no"}), YES, NO)
    started = start_session(definition, CTX, None)
    answered = reply(definition, started, "yes")
    later = RunContext(now=NOW + dt.timedelta(days=1))
    assert fire_timeout(definition, answered.state, later, 1).events == []


def test_input_timeout() -> None:
    definition = build(
        {
            "id": "ask",
            "type": "input",
            "text": "?",
            "save_as": "x",
            "next": "done",
            "timeout": {"seconds": 60, "next": "gone"},
        },
        {"id": "done", "type": "end"},
        {"id": "gone", "type": "end", "text": "too slow{{ input }}"},
    )
    started = start_session(definition, CTX, InboundMessage("hi"))
    fired = fire_timeout(definition, started.state, RunContext(now=NOW + dt.timedelta(60)), 1)
    assert texts(fired) == ["too slow"]


def test_session_goes_stale_after_session_timeout_without_node_timeout() -> None:
    definition = build(question(), YES, NO, settings={"session_timeout_seconds": 600})
    state = start_session(definition, CTX, None).state
    assert not session_is_stale(definition, state, NOW + dt.timedelta(seconds=600))
    assert session_is_stale(definition, state, NOW + dt.timedelta(seconds=601))
    expired = expire_session(state)
    assert expired.state.status == "expired"
    assert expired.outbound == []
    assert event_types(expired) == ["session_expired"]
    assert not session_is_stale(definition, expired.state, NOW + dt.timedelta(days=30))


def test_node_with_timeout_never_goes_stale() -> None:
    definition = build(
        question(timeout={"seconds": 86400, "next": "said_no"}),
        YES,
        NO,
        settings={"session_timeout_seconds": 60},
    )
    state = start_session(definition, CTX, None).state
    assert not session_is_stale(definition, state, NOW + dt.timedelta(days=2))


def test_interrupt_session() -> None:
    definition = build(question(), YES, NO)
    state = start_session(definition, CTX, None).state
    result = interrupt_session(state, "keyword")
    assert result.state.status == "interrupted"
    assert result.events[0].data == {"node_id": "ask", "reason": "keyword"}
    assert interrupt_session(result.state).events == []


def test_resume_of_a_finished_session_is_a_no_op() -> None:
    definition = build(question(), YES, NO)
    done = reply(definition, start_session(definition, CTX, None), "yes")
    again = reply(definition, done, "no")
    assert again.outbound == [] and again.events == [] and again.state == done.state


def test_state_at_a_node_missing_from_the_definition_fails() -> None:
    definition = build(question(), YES, NO)
    state = SessionState(status="waiting", node_id="vanished", wait_seq=1)
    result = resume_session(definition, state, CTX, InboundMessage("yes"))
    assert result.state.status == "failed"
    assert result.events[-1].data["node_id"] == "vanished"


# --- AI ----------------------------------------------------------------------------------------


class FakeAI:
    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[AIRequest] = []

    def __call__(self, request: AIRequest) -> str:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else "ok"
        if isinstance(answer, Exception):
            raise answer
        return answer


def ai_flow(**overrides: Any) -> FlowDefinition:
    node: dict[str, Any] = {
        "id": "bot",
        "type": "ai",
        "text": "Ask me",
        "instructions": "Help {{ contact.name }} with {{ vars.topic }}",
        "max_turns": 2,
        "history_messages": 7,
        "exit_keywords": ["menu"],
        "save_as": "last",
        "next": "after",
    }
    node.update(overrides)
    return build(
        {"id": "init", "type": "set", "values": {"topic": "yoga"}, "next": "bot"},
        node,
        {"id": "after", "type": "end", "text": "after {{ vars.last }}"},
        *([{"id": "oops", "type": "handoff", "reason": "ai down"}] if "on_error" in node else []),
        language="pt-BR",
    )


def test_ai_node_greets_answers_and_leaves_after_max_turns() -> None:
    # given
    definition = ai_flow()
    fake = FakeAI("Answer one", "x" * 5000)
    ctx = RunContext(now=NOW, contact_name="Ana", ai=fake)
    # when
    started = start_session(definition, ctx, InboundMessage("hi"))
    first = reply(definition, started, "When is yoga?", ctx=ctx)
    second = reply(definition, first, "And pilates?", ctx=ctx)
    # then
    assert texts(started) == ["Ask me"]
    assert started.state.status == "waiting"
    assert texts(first) == ["Answer one"]
    assert first.outbound[0].sender == "ai"
    assert first.state.ai_turns == 1 and first.state.status == "waiting"
    assert fake.requests[0] == AIRequest(
        instructions="Help Ana with yoga",
        language="pt-BR",
        history_messages=7,
        reply="When is yoga?",
        node_id="bot",
    )
    assert len(second.outbound[0].text) == 4096
    assert second.outbound[1].text.startswith("after xxx")
    assert len(second.outbound[1].text) == 4096
    assert second.state.status == "completed"
    assert second.state.variables["last"] == "x" * 4096


def test_ai_exit_keyword_leaves_without_calling_the_model() -> None:
    definition = ai_flow()
    fake = FakeAI()
    ctx = RunContext(now=NOW, ai=fake)
    result = reply(definition, start_session(definition, ctx, None), "MENU!", ctx=ctx)
    assert fake.requests == []
    # "after {{ vars.last }}" with no value: the dangling space goes with the empty value
    assert texts(result) == ["after"]


def test_ai_failure_sends_fallback_and_goes_to_on_error() -> None:
    definition = ai_flow(fallback_text="Sorry", on_error="oops")
    ctx = RunContext(now=NOW, ai=FakeAI(AIError("timeout")))
    result = reply(definition, start_session(definition, ctx, None), "question", ctx=ctx)
    assert texts(result) == ["Sorry"]
    assert result.outbound[0].sender == "flow"
    assert event_types(result) == ["ai_error", "handoff"]
    assert "timeout" in result.events[0].data["error"]


def test_ai_failure_without_on_error_stays_at_the_node() -> None:
    definition = ai_flow(fallback_text="Sorry")
    ctx = RunContext(now=NOW, ai=FakeAI(RuntimeError("boom"), "fine"))
    started = start_session(definition, ctx, None)
    failed = reply(definition, started, "q", ctx=ctx)
    assert texts(failed) == ["Sorry"]
    assert failed.state.status == "waiting" and failed.state.node_id == "bot"
    assert failed.state.ai_turns == 0
    assert failed.state.wait_seq == started.state.wait_seq + 1
    recovered = reply(definition, failed, "q", ctx=ctx)
    assert texts(recovered) == ["fine"]


def test_ai_without_a_responder_uses_the_fallback() -> None:
    definition = ai_flow(fallback_text="No AI here", on_error="oops")
    result = reply(definition, start_session(definition, CTX, None), "q")
    assert texts(result) == ["No AI here"]
    assert event_types(result)[0] == "ai_error"


def test_ai_empty_answer_counts_as_failure() -> None:
    definition = ai_flow(on_error="oops")
    ctx = RunContext(now=NOW, ai=FakeAI("   "))
    result = reply(definition, start_session(definition, ctx, None), "q", ctx=ctx)
    assert event_types(result) == ["ai_error", "handoff"]


# --- the node limit ----------------------------------------------------------------------------


def chain(length: int) -> FlowDefinition:
    nodes: list[dict[str, Any]] = [
        {"id": f"n{i}", "type": "message", "text": f"m{i}", "next": f"n{i + 1}"}
        for i in range(length - 1)
    ]
    nodes.append({"id": f"n{length - 1}", "type": "end", "text": "end"})
    return build(*nodes)


def test_a_hundred_nodes_per_message_are_allowed() -> None:
    result = start_session(chain(100), CTX, None)
    assert result.state.status == "completed"
    assert len(result.outbound) == 100


def test_the_101st_node_fails_the_session_and_sends_nothing() -> None:
    result = start_session(chain(101), CTX, None)
    assert result.state.status == "failed"
    assert result.outbound == []
    assert event_types(result) == ["session_started", "session_failed"]
    assert result.events[-1].data["node_id"] == "n100"
    assert "100" in result.events[-1].data["error"]


def test_the_limit_counts_per_message() -> None:
    nodes: list[dict[str, Any]] = [question(choices=[{"id": "go", "label": "Go", "next": "n0"}])]
    nodes += [
        {"id": f"n{i}", "type": "message", "text": "m", "next": f"n{i + 1}"} for i in range(99)
    ]
    nodes.append({"id": "n99", "type": "end"})
    definition = build(*nodes)
    result = reply(definition, start_session(definition, CTX, None), "go")
    assert result.state.status == "completed"


# --- state -------------------------------------------------------------------------------------


def test_state_round_trips_through_json() -> None:
    import json

    definition = build(question(timeout={"seconds": 60, "next": "said_no"}), YES, NO)
    state = reply(definition, start_session(definition, CTX, None), "x").state
    data = json.loads(json.dumps(state.to_dict()))
    assert SessionState.from_dict(data) == state


def test_steps_do_not_mutate_the_callers_state() -> None:
    definition = build(question(), YES, NO)
    state = start_session(definition, CTX, None).state
    before = state.to_dict()
    reply(definition, StepResult(state, [], []), "yes")
    assert state.to_dict() == before


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"status": 1, "node_id": None},
        {"status": "waiting", "node_id": 3},
        {"status": "waiting", "node_id": "a", "retries": "1"},
        {"status": "waiting", "node_id": "a", "waiting_since": 5},
    ],
)
def test_state_from_bad_dict_raises_value_error(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SessionState.from_dict(data)


def test_an_emoji_choice_is_picked_by_typing_the_emoji() -> None:
    # given: choices labelled with emoji only (normalising would empty them)
    emoji = question(
        choices=[
            {"id": "up", "label": "👍", "next": "said_yes"},
            {"id": "down", "label": "👎", "next": "said_no"},
        ]
    )
    definition = build(emoji, YES, NO)
    started = start_session(definition, CTX, InboundMessage("hi"))

    # when / then: the emoji picks its choice (with or without a variation selector)
    assert texts(reply(definition, started, "👎")) == ["no"]
    assert texts(reply(definition, started, " 👍\ufe0f")) == ["yes=up"]


def test_words_around_an_emoji_still_match_by_the_words() -> None:
    definition = build(question(), YES, NO)
    started = start_session(definition, CTX, InboundMessage("hi"))
    assert texts(reply(definition, started, "No 👎")) == ["no"]
