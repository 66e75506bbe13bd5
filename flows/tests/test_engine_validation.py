"""Validation: every rule rejects a bad flow with the right path, all problems at once."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from flows.engine import FlowValidationError, ValidationIssue, parse_flow, validate_flow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def minimal(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": 1,
        "flow_id": "demo",
        "name": "Demo",
        "start": "ask",
        "nodes": [
            {
                "id": "ask",
                "type": "question",
                "text": "Pick one",
                "choices": [
                    {"id": "a", "label": "A", "next": "done"},
                    {"id": "b", "label": "B", "next": "done"},
                ],
            },
            {"id": "done", "type": "end", "text": "Bye"},
        ],
    }
    document.update(overrides)
    return document


def issues_of(document: object) -> dict[str, str]:
    return {issue.path: issue.message for issue in validate_flow(document)}


def test_minimal_flow_is_valid() -> None:
    assert validate_flow(minimal()) == []
    definition = parse_flow(minimal())
    assert definition.language == "en"
    assert definition.trigger.match == "first_word"
    assert definition.trigger.weight == 100
    assert definition.settings.session_timeout_seconds == 86400
    assert definition.node("done").type == "end"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    assert validate_flow(json.loads(path.read_text())) == []


@pytest.mark.parametrize("version", [True, 1.0, "1", 2, 0, None, [1]])
def test_schema_version_must_be_the_integer_1(version: object) -> None:
    found = issues_of(minimal(schema_version=version))
    assert "schema_version" in found
    assert "version 1" in found["schema_version"]


def test_schema_version_is_required() -> None:
    document = minimal()
    del document["schema_version"]
    assert issues_of(document) == {"schema_version": "is required"}


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"flow_id": "Bad Id"}, "flow_id"),
        ({"flow_id": "-x"}, "flow_id"),
        ({"flow_id": "x" * 65}, "flow_id"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"language": "english!"}, "language"),
        ({"description": 3}, "description"),
        ({"trigger": {"match": "anywhere"}}, "trigger.match"),
        ({"trigger": {"weight": 0}}, "trigger.weight"),
        ({"trigger": {"weight": 101}}, "trigger.weight"),
        ({"trigger": {"default": "yes"}}, "trigger.default"),
        ({"trigger": {"keywords": ["!!!"]}}, "trigger.keywords[0]"),
        ({"trigger": {"keywords": "hi"}}, "trigger.keywords"),
        ({"settings": {"session_timeout_seconds": 59}}, "settings.session_timeout_seconds"),
        ({"settings": {"session_timeout_seconds": 604801}}, "settings.session_timeout_seconds"),
        ({"settings": {"session_timeout_seconds": True}}, "settings.session_timeout_seconds"),
        ({"settings": {"ignore_keyword": True}}, "settings.ignore_keyword"),
        ({"start": "nowhere"}, "start"),
        ({"nodes": []}, "nodes"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_top_level_rules(overrides: dict[str, Any], path: str) -> None:
    assert path in issues_of(minimal(**overrides))


def test_unknown_key_names_the_key() -> None:
    document = minimal()
    document["nodes"][1]["txt"] = "typo"
    assert issues_of(document) == {"nodes[1].txt": 'unknown key "txt"'}


def test_unknown_reference_has_the_spec_path_and_message() -> None:
    document = minimal()
    document["nodes"][0]["choices"][1]["next"] = "pricing"
    assert issues_of(document) == {"nodes[0].choices[1].next": 'unknown node "pricing"'}


def node_doc(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A flow whose start is the first node given, plus an ``end`` node called ``done``."""
    return minimal(start=nodes[0]["id"], nodes=[*nodes, {"id": "done", "type": "end"}])


@pytest.mark.parametrize(
    ("node", "path"),
    [
        ({"id": "m", "type": "message", "text": "", "next": "done"}, "nodes[0].text"),
        ({"id": "m", "type": "message", "text": "x" * 4097, "next": "done"}, "nodes[0].text"),
        ({"id": "m", "type": "message", "text": "hi", "next": "nope"}, "nodes[0].next"),
        (
            {"id": "m", "type": "message", "text": "hi", "media_url": "http://x.io/a.png"},
            "nodes[0].media_url",
        ),
        ({"id": "m", "type": "message", "text": "{{ secret }}"}, "nodes[0].text"),
        ({"id": "m", "type": "message", "text": "{{ vars.Bad }}"}, "nodes[0].text"),
        ({"id": "m", "type": "message", "text": "{{ contact.email }}"}, "nodes[0].text"),
        ({"id": "Bad", "type": "message", "text": "hi"}, "nodes[0].id"),
        ({"id": "m", "type": "messsage", "text": "hi"}, "nodes[0]"),
        ({"id": "m", "text": "hi"}, "nodes[0]"),
        (
            {"id": "q", "type": "question", "text": "?", "choices": []},
            "nodes[0].choices",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [{"id": f"c{i}", "label": "L", "next": "done"} for i in range(11)],
            },
            "nodes[0].choices",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [{"id": "c", "label": "x" * 21, "next": "done"}],
            },
            "nodes[0].choices[0].label",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [{"id": "c", "label": "C", "next": "done"}],
                "max_retries": 6,
            },
            "nodes[0].max_retries",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [{"id": "c", "label": "C", "next": "done"}],
                "save_as": "Bad-Name",
            },
            "nodes[0].save_as",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [{"id": "c", "label": "C", "next": "done"}],
                "timeout": {"seconds": 59, "next": "done"},
            },
            "nodes[0].timeout.seconds",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [{"id": "c", "label": "C", "next": "done"}],
                "timeout": {"seconds": 60, "next": "gone"},
            },
            "nodes[0].timeout.next",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [{"id": "c", "label": "C", "next": "done"}],
                "on_invalid": "gone",
            },
            "nodes[0].on_invalid",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [
                    {"id": "c", "label": "C", "next": "done"},
                    {"id": "c", "label": "D", "next": "done"},
                ],
            },
            "nodes[0].choices[1].id",
        ),
        (
            {
                "id": "q",
                "type": "question",
                "text": "?",
                "choices": [
                    {"id": "yes", "label": "Yes", "next": "done"},
                    {"id": "no", "label": "No", "keywords": ["YES!"], "next": "done"},
                ],
            },
            "nodes[0].choices[1].keywords[0]",
        ),
        ({"id": "i", "type": "input", "text": "?", "next": "done"}, "nodes[0].save_as"),
        ({"id": "i", "type": "input", "text": "?", "save_as": "x"}, "nodes[0].next"),
        (
            {
                "id": "i",
                "type": "input",
                "text": "?",
                "save_as": "x",
                "next": "done",
                "validate": "colour",
            },
            "nodes[0].validate",
        ),
        (
            {
                "id": "i",
                "type": "input",
                "text": "?",
                "save_as": "x",
                "next": "done",
                "validate": {"regex": "(unclosed"},
            },
            "nodes[0].validate.regex",
        ),
        (
            {
                "id": "i",
                "type": "input",
                "text": "?",
                "save_as": "x",
                "next": "done",
                "validate": {"regex": "a" * 201},
            },
            "nodes[0].validate.regex",
        ),
        ({"id": "b", "type": "branch", "cases": []}, "nodes[0].default"),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"var": "x", "op": "between", "value": 1}, "next": "done"}],
            },
            "nodes[0].cases[0].when.op",
        ),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"var": "x", "op": "in", "value": "a"}, "next": "done"}],
            },
            "nodes[0].cases[0].when",
        ),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"var": "x", "op": "gt", "value": "many"}, "next": "done"}],
            },
            "nodes[0].cases[0].when",
        ),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"var": "x", "op": "exists", "value": 1}, "next": "done"}],
            },
            "nodes[0].cases[0].when",
        ),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"var": "x", "op": "eq"}, "next": "done"}],
            },
            "nodes[0].cases[0].when",
        ),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"var": "x", "op": "matches", "value": "(["}, "next": "done"}],
            },
            "nodes[0].cases[0].when",
        ),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"input": False, "op": "exists"}, "next": "done"}],
            },
            "nodes[0].cases[0].when.input",
        ),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"all": [{"nope": 1}]}, "next": "done"}],
            },
            "nodes[0].cases[0].when.all[0]",
        ),
        (
            {
                "id": "b",
                "type": "branch",
                "default": "done",
                "cases": [{"when": {"var": "x", "op": "exists"}, "next": "gone"}],
            },
            "nodes[0].cases[0].next",
        ),
        ({"id": "s", "type": "set", "values": {"Bad": "x"}, "next": "done"}, "nodes[0].values.Bad"),
        (
            {"id": "s", "type": "set", "values": {"ok": "{{ x }}"}, "next": "done"},
            "nodes[0].values.ok",
        ),
        ({"id": "s", "type": "set", "values": {}, "next": "done"}, "nodes[0].values"),
        ({"id": "a", "type": "ai", "next": "done"}, "nodes[0].instructions"),
        (
            {"id": "a", "type": "ai", "instructions": "Help", "max_turns": 21},
            "nodes[0].max_turns",
        ),
        (
            {"id": "a", "type": "ai", "instructions": "Help", "history_messages": 51},
            "nodes[0].history_messages",
        ),
        (
            {"id": "a", "type": "ai", "instructions": "Help", "on_error": "gone"},
            "nodes[0].on_error",
        ),
        ({"id": "h", "type": "handoff", "reason": 5}, "nodes[0].reason"),
        ({"id": "e", "type": "end", "next": "done"}, "nodes[0].next"),
    ],
)
def test_node_rules(node: dict[str, Any], path: str) -> None:
    found = issues_of(node_doc(node))
    assert path in found, found


def test_deeply_nested_condition_is_rejected_not_crashing() -> None:
    condition: dict[str, Any] = {"var": "x", "op": "exists"}
    for _ in range(2000):
        condition = {"not": condition}
    document = node_doc(
        {
            "id": "b",
            "type": "branch",
            "default": "done",
            "cases": [{"when": condition, "next": "done"}],
        }
    )
    assert validate_flow(document)


def test_duplicate_node_ids() -> None:
    document = minimal()
    document["nodes"].append({"id": "done", "type": "end"})
    assert issues_of(document) == {"nodes[2].id": 'duplicate node id "done" (also nodes[1])'}


def test_unreachable_node() -> None:
    document = minimal()
    document["nodes"].append({"id": "orphan", "type": "end"})
    assert issues_of(document) == {"nodes[2]": "cannot be reached from start"}


def test_loop_without_a_waiting_node() -> None:
    document = minimal(
        start="one",
        nodes=[
            {"id": "one", "type": "message", "text": "1", "next": "two"},
            {"id": "two", "type": "set", "values": {"n": "x"}, "next": "three"},
            {"id": "three", "type": "branch", "cases": [], "default": "one"},
        ],
    )
    found = issues_of(document)
    assert list(found) == ["nodes[0]"]
    assert "one -> two -> three -> one" in found["nodes[0]"]


def test_self_loop_is_a_cycle() -> None:
    document = minimal(start="b", nodes=[{"id": "b", "type": "branch", "default": "b"}])
    assert "nodes[0]" in issues_of(document)


def test_loop_through_a_question_is_fine() -> None:
    document = minimal(
        start="ask",
        nodes=[
            {
                "id": "ask",
                "type": "question",
                "text": "Again?",
                "choices": [{"id": "yes", "label": "Yes", "next": "note"}],
            },
            {"id": "note", "type": "message", "text": "ok", "next": "ask"},
        ],
    )
    assert validate_flow(document) == []


def test_every_problem_is_reported_at_once() -> None:
    document = minimal(flow_id="BAD", name="")
    document["nodes"][0]["choices"][0]["next"] = "pricing"
    document["nodes"][1]["text"] = 7
    document["nodes"].append({"id": "x", "type": "message", "text": "{{ bad }}"})
    found = issues_of(document)
    assert set(found) == {
        "flow_id",
        "name",
        "nodes[0].choices[0].next",
        "nodes[1].text",
        "nodes[2]",
        "nodes[2].text",
    }


def test_too_many_nodes() -> None:
    nodes = [
        {"id": f"n{i}", "type": "message", "text": "x", "next": f"n{i + 1}"} for i in range(1000)
    ]
    nodes.append({"id": "n1000", "type": "end"})
    found = issues_of(minimal(start="n0", nodes=nodes))
    assert "nodes" in found and "at most 1000" in found["nodes"]


def test_a_thousand_node_chain_is_valid_and_fast() -> None:
    nodes = [
        {"id": f"n{i}", "type": "message", "text": "x", "next": f"n{i + 1}"} for i in range(999)
    ]
    nodes.append({"id": "n999", "type": "end"})
    assert validate_flow(minimal(start="n0", nodes=nodes)) == []


@pytest.mark.parametrize(
    "document", [None, 1, "flow", [], b"{}", {"nodes": "x"}, {"nodes": [None, 3]}, {1: 2}]
)
def test_garbage_is_rejected_with_issues(document: object) -> None:
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(document)
    assert caught.value.issues
    assert all(isinstance(issue, ValidationIssue) for issue in caught.value.issues)


def test_error_string_lists_path_and_message_per_line() -> None:
    document = minimal(start="nowhere")
    with pytest.raises(FlowValidationError) as caught:
        parse_flow(document)
    assert str(caught.value) == 'start: unknown node "nowhere"'


def test_parse_does_not_mutate_the_document() -> None:
    document = minimal()
    before = copy.deepcopy(document)
    parse_flow(document)
    assert document == before
