"""The flow as a graph: exits in plain language, the route events the runtime emits for them,
and the nodes the diagram flags. Pure: no database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flows.engine import (
    EventType,
    FlowDefinition,
    InboundMessage,
    RunContext,
    StepResult,
    fire_timeout,
    parse_flow,
    resume_session,
    start_session,
)
from flows.engine.definition import FlowDefinition as RawDefinition
from flows.engine.graph import dead_ends, describe_condition, node_exits, unreachable
from flows.tests.support import example

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
CTX = RunContext(now=NOW, contact_name="Ana", tenant_name="Acme")


def route(result: StepResult) -> list[tuple[str, ...]]:
    """The path events of a step: ("in", node) and ("out", node, exit, to)."""
    steps: list[tuple[str, ...]] = []
    for event in result.events:
        if event.type == EventType.NODE_ENTERED:
            steps.append(("in", event.data["node_id"]))
        elif event.type == EventType.NODE_EXITED:
            data = event.data
            steps.append(("out", data["node_id"], data["exit"], data["to"]))
    return steps


def reply(definition: FlowDefinition, result: StepResult, text: str) -> StepResult:
    return resume_session(definition, result.state, CTX, InboundMessage(text))


# --- conditions in plain language -----------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            {
                "all": [
                    {"var": "especialidade", "op": "eq", "value": "pediatria"},
                    {"var": "idade", "op": "gte", "value": 18},
                ]
            },
            "especialidade is pediatria and idade ≥ 18",
        ),
        (
            {"input": True, "op": "contains", "value": ["human", "agent"]},
            "the reply contains human, agent",
        ),
        ({"var": "plan", "op": "exists"}, "plan is set"),
        ({"not": {"var": "plan", "op": "in", "value": ["a", "b"]}}, "not plan is one of a, b"),
        (
            {
                "any": [
                    {"var": "x", "op": "lt", "value": 1},
                    {
                        "all": [
                            {"var": "y", "op": "ne", "value": True},
                            {"var": "z", "op": "matches", "value": "^a"},
                        ]
                    },
                ]
            },
            'x < 1 or (y is not true and z matches "^a")',
        ),
        ({"not": {"all": [{"var": "a", "op": "lte", "value": 2.5}]}}, "not (a ≤ 2.5)"),
        ({"var": "x", "op": "eq", "value": "a and y is b"}, 'x is "a and y is b"'),
        ({"var": "x", "op": "in", "value": ["a, b", "c"]}, 'x is one of "a, b", c'),
        ({"var": "mail", "op": "eq", "value": "ana@example.com"}, "mail is ana@example.com"),
    ],
)
def test_conditions_read_as_plain_language(condition: dict, expected: str) -> None:
    definition = parse_flow(
        {
            "schema_version": 1,
            "flow_id": "c",
            "name": "c",
            "start": "b",
            "nodes": [
                {
                    "id": "b",
                    "type": "branch",
                    "cases": [{"when": condition, "next": "e"}],
                    "default": "e",
                },
                {"id": "e", "type": "end"},
            ],
        }
    )
    branch = definition.node("b")
    assert describe_condition(branch.cases[0].when) == expected  # type: ignore[union-attr]


# --- exits ----------------------------------------------------------------------------------


def test_each_node_type_lists_its_exits_with_keys_and_labels() -> None:
    definition = parse_flow(example("clinica-agendamento"))

    exits = {
        node.id: [(e.key, e.target, e.label, e.kind) for e in node_exits(node)]
        for node in definition.nodes
    }

    assert exits["boas_vindas"] == [
        ("choice:sim", "especialidade", "Sim", "normal"),
        ("choice:nao", "tchau", "Não", "normal"),
    ]
    assert exits["especialidade"][-1] == ("invalid", "atendente", "invalid reply", "fallback")
    assert exits["idade"] == [("next", "faixa", "valid number", "normal")]
    assert exits["faixa"] == [
        ("case:1", "pediatria_adulto", "especialidade is pediatria and idade ≥ 18", "normal"),
        ("case:2", "atendente", "idade < 0", "normal"),
        ("default", "resumo", "otherwise", "fallback"),
    ]
    assert exits["atendente"] == [] and exits["tchau"] == []


def test_a_timeout_exit_says_how_long() -> None:
    definition = parse_flow(example("fitness-welcome"))

    menu = {e.key: e for e in node_exits(definition.node("menu"))}

    assert menu["timeout"].label == "no reply in 1 h"
    assert menu["timeout"].kind == "timeout"
    assert menu["timeout"].target == "bye"


# --- the route the runtime records -----------------------------------------------------------


def test_the_runtime_names_every_exit_it_takes() -> None:
    definition = parse_flow(example("fitness-welcome"))

    started = start_session(definition, CTX, InboundMessage("hi"))
    prices = reply(definition, started, "prices")
    yes = reply(definition, prices, "yes")

    assert route(started) == [("in", "greet"), ("out", "greet", "next", "menu"), ("in", "menu")]
    assert route(prices) == [
        ("out", "menu", "choice:prices", "prices"),
        ("in", "prices"),
        ("out", "prices", "next", "after_prices"),
        ("in", "after_prices"),
    ]
    assert route(yes) == [("out", "after_prices", "choice:yes", "ask_day"), ("in", "ask_day")]


def test_invalid_replies_branches_and_timeouts_are_exits_too() -> None:
    definition = parse_flow(example("fitness-welcome"))
    started = start_session(definition, CTX, InboundMessage("hi"))

    first_miss = reply(definition, started, "banana")  # a retry: no exit, no new entry
    fired = fire_timeout(
        definition, first_miss.state, RunContext(now=NOW + dt.timedelta(hours=2)), 2
    )

    assert route(first_miss) == []
    assert route(fired) == [("out", "menu", "timeout", "bye"), ("in", "bye")]


def test_every_recorded_exit_is_an_arrow_of_the_diagram() -> None:
    """Whatever the replies, each node_exited event names an exit node_exits lists, with
    the same target: the counts always land on a drawn arrow."""
    for name, scripts in {
        "fitness-welcome": [
            ["hi", "trial", "2026-01-02", "a@b.co"],
            ["hi", "x", "y", "z"],
            ["hi", "prices", "no"],
        ],
        "clinica-agendamento": [
            ["oi", "sim", "pediatria", "12"],
            ["oi", "sim", "outra"],
            ["oi", "não"],
        ],
    }.items():
        definition = parse_flow(example(name))
        arrows = {(n.id, e.key): e.target for n in definition.nodes for e in node_exits(n)}
        for script in scripts:
            result = start_session(definition, CTX, InboundMessage(script[0]))
            seen = route(result)
            for text in script[1:]:
                result = reply(definition, result, text)
                seen += route(result)
            for step in seen:
                if step[0] == "out":
                    assert arrows[(step[1], step[2])] == step[3], (name, step)


# --- flags ----------------------------------------------------------------------------------


def _raw(nodes: list[dict[str, Any]], start: str = "a") -> FlowDefinition:
    """A definition built without the whole-document checks (as an old stored version may be)."""
    return RawDefinition.model_validate(
        {"schema_version": 1, "flow_id": "f", "name": "f", "start": start, "nodes": nodes}
    )


def test_dead_ends_and_unreachable_nodes_are_found() -> None:
    definition = _raw(
        [
            {"id": "a", "type": "message", "text": "hi", "next": "b"},
            {"id": "b", "type": "ai", "instructions": "help"},
            {"id": "orphan", "type": "message", "text": "never sent"},
            {"id": "fine", "type": "end"},
        ]
    )

    assert dead_ends(definition) == ["b", "orphan"]
    assert unreachable(definition) == ["orphan", "fine"]


def test_the_examples_have_no_dead_ends_or_unreachable_nodes() -> None:
    for name in ("fitness-welcome", "clinica-agendamento"):
        definition = parse_flow(example(name))
        assert dead_ends(definition) == []
        assert unreachable(definition) == []
