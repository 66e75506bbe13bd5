"""The example flows validate and run to each of their ends; the engine stays Django-free."""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from flows.engine import (
    AIError,
    AIRequest,
    FlowDefinition,
    InboundMessage,
    RunContext,
    StepResult,
    fire_timeout,
    flow_json_schema_text,
    parse_flow,
    resume_session,
    start_session,
)

FLOWS_DIR = Path(__file__).resolve().parents[1]
EXAMPLES = FLOWS_DIR / "examples"
SHARED_EXAMPLES = FLOWS_DIR.parents[1] / "shared" / "examples" / "flows"
NOW = dt.datetime(2026, 5, 4, 9, 30, tzinfo=dt.UTC)


def load(name: str) -> FlowDefinition:
    return parse_flow(json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8")))


def converse(
    definition: FlowDefinition, first: str, *replies: str, ai: Any = None
) -> tuple[StepResult, list[str]]:
    ctx = RunContext(now=NOW, contact_name="Ana", tenant_name="Acme Fitness", ai=ai)
    result = start_session(definition, ctx, InboundMessage(first))
    sent = [message.text for message in result.outbound]
    for text in replies:
        assert result.state.status == "waiting", (text, sent)
        result = resume_session(definition, result.state, ctx, InboundMessage(text))
        sent += [message.text for message in result.outbound]
    return result, sent


def outcome(result: StepResult) -> tuple[str, str | None]:
    last = result.events[-1]
    return last.type, result.state.node_id


@pytest.mark.skipif(not SHARED_EXAMPLES.is_dir(), reason="shared examples not mounted")
@pytest.mark.parametrize("name", ["fitness-welcome", "clinica-agendamento"])
def test_examples_are_copies_of_the_shared_ones(name: str) -> None:
    ours = (EXAMPLES / f"{name}.json").read_bytes()
    assert ours == (SHARED_EXAMPLES / f"{name}.json").read_bytes()


# --- fitness-welcome -----------------------------------------------------------------------


def ai_answers(request: AIRequest) -> str:
    return f"Answer to {request.reply}"


def ai_down(request: AIRequest) -> str:
    raise AIError("model not configured")


@pytest.mark.parametrize(
    ("replies", "ai", "expected_end", "last_text"),
    [
        (
            ["trial", "2026-12-01", "ana@example.com"],
            None,
            ("session_completed", "confirm"),
            "Done: your free trial is on 2026-12-01. See you soon!",
        ),
        (["2", "no"], None, ("session_completed", "bye"), "Thanks for reaching out, Ana!"),
        (
            ["prices", "yes", "2026-12-01", "ana@example.com"],
            None,
            ("session_completed", "confirm"),
            None,
        ),
        (["x", "y", "z"], None, ("handoff", "human"), "A team member will reply here shortly."),
        (["1", "tomorrow", "soon", "later"], None, ("handoff", "human"), None),
        (["other", "what time?", "human"], ai_answers, ("handoff", "human"), None),
        (["other", "menu", "2", "no"], ai_answers, ("session_completed", "bye"), None),
        (
            ["other", "q1", "q2", "q3", "q4", "q5"],
            ai_answers,
            ("session_completed", "bye"),
            "Thanks for reaching out, Ana!",
        ),
        (["other", "hours?"], ai_down, ("handoff", "human"), None),
        (["prices", "maybe", "human", "Agent!"], ai_answers, ("handoff", "human"), None),
    ],
)
def test_fitness_welcome_runs_to_each_end(
    replies: list[str], ai: Any, expected_end: tuple[str, str], last_text: str | None
) -> None:
    # given
    definition = load("fitness-welcome")
    # when
    result, sent = converse(definition, "hi", *replies, ai=ai)
    # then
    assert sent[0] == "Hi Ana! Welcome to Acme Fitness."
    assert outcome(result) == expected_end
    assert result.state.status == "completed"
    if last_text is not None:
        assert sent[-1] == last_text


def test_fitness_welcome_ai_answers_are_sent_by_ai() -> None:
    definition = load("fitness-welcome")
    ctx = RunContext(now=NOW, ai=ai_answers)
    state = start_session(definition, ctx, InboundMessage("hi")).state
    state = resume_session(definition, state, ctx, InboundMessage("other")).state
    result = resume_session(definition, state, ctx, InboundMessage("Do you have yoga?"))
    assert [(m.sender, m.text) for m in result.outbound] == [("ai", "Answer to Do you have yoga?")]


def test_fitness_welcome_menu_timeout_says_bye() -> None:
    definition = load("fitness-welcome")
    started = start_session(definition, RunContext(now=NOW), InboundMessage("hi"))
    later = RunContext(now=NOW + dt.timedelta(hours=1), contact_name="Ana")
    fired = fire_timeout(definition, started.state, later, started.state.wait_seq)
    assert [m.text for m in fired.outbound] == ["Thanks for reaching out, Ana!"]


# --- clinica-agendamento -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replies", "expected_end", "last_text"),
    [
        (
            ["sim", "clínico geral", "40"],
            ("session_completed", "resumo"),
            "Perfeito! Pedido de consulta de clinico registrado. Retornaremos em breve.",
        ),
        (["Não"], ("session_completed", "tchau"), "Tudo bem! Estamos à disposição."),
        (
            ["quero", "pediatria", "30"],
            ("handoff", "atendente"),
            "Um atendente vai continuar por aqui.",
        ),
        (["s", "pele", "-3"], ("handoff", "atendente"), None),
        (["1", "4"], ("handoff", "atendente"), None),
        (["1", "ortopedia", "ortopedia"], ("handoff", "atendente"), None),
        (["talvez", "talvez", "talvez"], ("session_completed", "boas_vindas"), None),
        (["sim", "2", "cinco", "5"], ("session_completed", "resumo"), None),
    ],
)
def test_clinica_runs_to_each_end(
    replies: list[str], expected_end: tuple[str, str], last_text: str | None
) -> None:
    definition = load("clinica-agendamento")
    result, sent = converse(definition, "Olá, quero marcar", *replies)
    assert sent[0] == "Olá! Você gostaria de agendar uma consulta?"
    assert outcome(result) == expected_end
    if last_text is not None:
        assert sent[-1] == last_text


# --- purity and the committed schema -------------------------------------------------------


@pytest.mark.parametrize("path", sorted((FLOWS_DIR / "engine").rglob("*.py")), ids=lambda p: p.name)
def test_engine_never_imports_django(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in {"django", "rest_framework"}, f"{path}: {name}"


def test_committed_json_schema_is_current() -> None:
    committed = (FLOWS_DIR / "schema" / "flow-v1.schema.json").read_text(encoding="utf-8")
    assert committed == flow_json_schema_text(), (
        "flows/schema/flow-v1.schema.json is stale; regenerate it with "
        "`python -m flows.engine > flows/schema/flow-v1.schema.json`"
    )
