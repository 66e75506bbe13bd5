"""Property-based tests: generated flows and messages never make the engine raise or loop."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.engine import (
    AIError,
    AIRequest,
    FlowValidationError,
    InboundMessage,
    RunContext,
    StepResult,
    ValidationIssue,
    expire_session,
    fire_timeout,
    normalize,
    parse_flow,
    resume_session,
    session_is_stale,
    start_session,
    validate_flow,
)
from flows.engine.definition import WAITING_NODE_TYPES

BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
REPLY_POOL = [
    "1", "2", "3", "yes", "no", "menu", "human", "42", "-1", "3.5", "2026-12-01", "01/12/2026",
    "ana@example.com", "+5511988887777", "", "   ", "Olá!", "stop", "x" * 5000,
]  # fmt: skip
TYPES = ["message", "question", "input", "branch", "set", "ai", "handoff", "end"]

texts = st.one_of(
    st.sampled_from(["Hi {{ contact.name }}", "{{ input }}", "Value {{ vars.v0 }}", "ok"]),
    # storable text: a flow with a NUL or a lone surrogate is invalid (PostgreSQL refuses it)
    st.text(
        alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=30,
    ).filter(lambda t: "{{" not in t and t.strip()),
)
conditions = st.recursive(
    st.one_of(
        st.builds(
            lambda var, op, value: {"var": var, "op": op, "value": value},
            st.sampled_from(["v0", "v1", "answer"]),
            st.sampled_from(["eq", "ne"]),
            st.sampled_from(["yes", "1", 2, 2.5, True, None]),
        ),
        st.builds(
            lambda op, value: {"input": True, "op": op, "value": value},
            st.sampled_from(["gt", "gte", "lt", "lte"]),
            st.sampled_from([0, "3", -1.5]),
        ),
        st.just({"input": True, "op": "contains", "value": ["human", "menu"]}),
        st.just({"input": True, "op": "matches", "value": "^[0-9]+$"}),
        st.just({"var": "v0", "op": "in", "value": ["a", 1, None]}),
        st.just({"var": "v1", "op": "exists"}),
    ),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"any": items}),
        inner.map(lambda item: {"not": item}),
    ),
    max_leaves=6,
)


@st.composite
def valid_flows(draw: st.DrawFn) -> dict[str, Any]:
    """A valid flow by construction: non-waiting nodes only point forward (so every cycle goes
    through a waiting node); unreachable nodes are pruned afterwards."""
    count = draw(st.integers(min_value=1, max_value=12))
    types = [draw(st.sampled_from(TYPES)) for _ in range(count - 1)] + ["end"]
    ids = [f"n{i}" for i in range(count)]

    def target(i: int, waiting: bool) -> str:
        low = 0 if waiting else i + 1
        return ids[draw(st.integers(min_value=min(low, count - 1), max_value=count - 1))]

    nodes = []
    for i, node_type in enumerate(types):
        waiting = node_type in WAITING_NODE_TYPES
        if not waiting and i == count - 1 and node_type not in {"handoff", "end"}:
            node_type = "end"
        node: dict[str, Any] = {"id": ids[i], "type": node_type}
        if node_type == "message":
            node["text"] = draw(texts)
            if draw(st.booleans()):
                node["next"] = target(i, False)
        elif node_type == "question":
            size = draw(st.integers(min_value=1, max_value=4))
            node.update(
                text=draw(texts),
                choices=[
                    {"id": f"c{k}", "label": f"Option {k}", "next": target(i, True)}
                    for k in range(size)
                ],
                save_as="answer",
                max_retries=draw(st.integers(min_value=0, max_value=2)),
            )
            if draw(st.booleans()):
                node["on_invalid"] = target(i, True)
            if draw(st.booleans()):
                node["timeout"] = {"seconds": 60, "next": target(i, True)}
        elif node_type == "input":
            node.update(
                text=draw(texts),
                save_as=draw(st.sampled_from(["v0", "v1"])),
                validate=draw(
                    st.sampled_from(
                        [
                            "any",
                            "email",
                            "number",
                            "phone",
                            "date",
                            "location",
                            "flow_reply",
                            {"regex": "\\d+"},
                        ]
                    )
                ),
                next=target(i, True),
                max_retries=draw(st.integers(min_value=0, max_value=2)),
            )
            if draw(st.booleans()):
                node["timeout"] = {"seconds": 120, "next": target(i, True)}
        elif node_type == "branch":
            node["cases"] = [
                {"when": draw(conditions), "next": target(i, False)}
                for _ in range(draw(st.integers(min_value=0, max_value=3)))
            ]
            node["default"] = target(i, False)
        elif node_type == "set":
            node.update(values={"v0": draw(texts), "v1": "{{ input }}"}, next=target(i, False))
        elif node_type == "ai":
            node.update(
                instructions="Help with {{ vars.v0 }}",
                max_turns=draw(st.integers(min_value=1, max_value=3)),
                exit_keywords=["menu"],
                save_as="v1",
            )
            if draw(st.booleans()):
                node["text"] = draw(texts)
            if draw(st.booleans()):
                node["fallback_text"] = "Sorry"
            if draw(st.booleans()):
                node["on_error"] = target(i, True)
            if draw(st.booleans()):
                node["next"] = target(i, True)
        elif node_type == "handoff":
            node["reason"] = "generated"
        nodes.append(node)
    return {
        "schema_version": 1,
        "flow_id": "generated",
        "name": "Generated",
        "start": "n0",
        "nodes": _prune_unreachable(nodes),
    }


def _prune_unreachable(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {node["id"]: node for node in nodes}
    seen, stack = {"n0"}, ["n0"]
    while stack:
        node = by_id[stack.pop()]
        targets = [node.get(k) for k in ("next", "default", "on_invalid", "on_error")]
        targets += [item["next"] for item in node.get("choices", []) + node.get("cases", [])]
        targets.append(node.get("timeout", {}).get("next"))
        for found in targets:
            if found is not None and found not in seen:
                seen.add(found)
                stack.append(found)
    return [node for node in nodes if node["id"] in seen]


actions = st.lists(
    st.one_of(
        st.tuples(st.just("reply"), st.sampled_from(REPLY_POOL)),
        st.tuples(st.just("reply"), st.text(max_size=20)),
        st.tuples(st.just("button"), st.sampled_from(["c0", "c1", "c9", ""])),
        st.tuples(
            st.just("structured"),
            st.sampled_from(
                [
                    ("location", {"latitude": 1.5, "longitude": 2.5, "name": "", "address": ""}),
                    ("flow_reply", {"a": 1, "b": ["x"]}),
                    ("flow_reply", {}),
                    ("location", None),
                ]
            ),
        ),
        st.tuples(st.just("timeout"), st.integers(min_value=0, max_value=3)),
        st.tuples(st.just("wait"), st.integers(min_value=0, max_value=200000)),
    ),
    max_size=12,
)


def flaky_ai(seed: int) -> Any:
    calls = {"n": seed}

    def respond(request: AIRequest) -> str:
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise AIError("down")
        if calls["n"] % 5 == 0:
            raise ValueError("a buggy responder")
        return f"answer {calls['n']}: {request.reply[:10]}"

    return respond


def check_invariants(definition: Any, result: StepResult) -> None:
    state = result.state
    assert state.status in {"waiting", "completed", "failed", "expired", "interrupted"}
    if state.status == "waiting":
        assert definition.node(state.node_id).type in WAITING_NODE_TYPES
        assert state.waiting_since is not None
    else:
        assert state.wait_expires_at is None
    for message in result.outbound:
        assert len(message.text) <= 4096
        assert message.text or message.media_url
        assert message.sender in {"flow", "ai"}


@BOUNDED
@given(document=valid_flows(), steps=actions, seed=st.integers(min_value=0, max_value=14))
def test_generated_flows_never_raise_and_always_stop(
    document: dict[str, Any], steps: list[tuple[str, Any]], seed: int
) -> None:
    assert validate_flow(document) == []
    definition = parse_flow(document)
    now = NOW
    ctx = RunContext(now=now, contact_name="Ana", ai=flaky_ai(seed))
    result = start_session(definition, ctx, InboundMessage("hello"))
    check_invariants(definition, result)
    for kind, value in steps:
        state = result.state
        if kind == "wait":
            now += dt.timedelta(seconds=value)
            ctx = RunContext(now=now, contact_name="Ana", ai=flaky_ai(seed))
            if session_is_stale(definition, state, now):
                result = expire_session(state)
        elif kind == "timeout":
            result = fire_timeout(definition, state, ctx, state.wait_seq - value)
        elif kind == "button":
            result = resume_session(definition, state, ctx, InboundMessage(None, value))
        elif kind == "structured":
            message_kind, data = value
            inbound = InboundMessage(None, kind=message_kind, data=data)
            result = resume_session(definition, state, ctx, inbound)
        else:
            result = resume_session(definition, state, ctx, InboundMessage(value))
        check_invariants(definition, result)


# --- invalid documents -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def assert_rejected(document: object) -> None:
    issues = validate_flow(document)
    assert issues and all(isinstance(issue, ValidationIssue) for issue in issues)
    try:
        parse_flow(document)
    except FlowValidationError as exc:
        assert exc.issues == issues
    else:  # pragma: no cover
        raise AssertionError("parse_flow accepted an invalid document")


@BOUNDED
@given(document=json_values)
def test_arbitrary_json_is_rejected_with_issues(document: object) -> None:
    assert_rejected(document)


@st.composite
def broken_flows(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(draw(valid_flows()))
    nodes = document["nodes"]
    index = draw(st.integers(min_value=0, max_value=len(nodes) - 1))
    node = nodes[index]
    mutation = draw(st.sampled_from(["unknown_key", "dangling", "drop_id", "bad_type", "top"]))
    if mutation == "unknown_key":
        node[draw(st.sampled_from(["txt", "nxt", "colour"]))] = draw(json_values)
    elif mutation == "dangling":
        node_type = node["type"]
        if node_type == "question":
            node["choices"][0]["next"] = "missing-node"
        elif node_type == "branch":
            node["default"] = "missing-node"
        elif node_type in {"handoff", "end"}:
            node["type"] = draw(st.sampled_from(["mesage", "goto", "", 3]))
        else:
            node["next"] = "missing-node"
    elif mutation == "drop_id":
        del node["id"]
    elif mutation == "bad_type":
        node["id"] = draw(st.sampled_from([None, 3, [], "Not A Slug", ""]))
    else:
        key = draw(st.sampled_from(["schema_version", "flow_id", "name", "start", "nodes"]))
        document[key] = draw(st.sampled_from([None, True, 2, "", [], {}]))
    return document


@BOUNDED
@given(document=broken_flows())
def test_broken_flows_are_rejected_with_issues(document: dict[str, Any]) -> None:
    assert_rejected(document)


@BOUNDED
@given(text=st.text(max_size=50))
def test_normalize_is_idempotent(text: str) -> None:
    assert normalize(normalize(text)) == normalize(text)
