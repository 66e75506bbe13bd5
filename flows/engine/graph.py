"""A flow as a graph: each node's exits in plain language, and the nodes worth flagging.

The runtime names the exit it takes with the same keys (``node_exited`` events), so a count
recorded for an exit lands on the arrow drawn for it. Pure: the diagram and the tests read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from .definition import (
    AINode,
    AllCondition,
    AnyCondition,
    BranchNode,
    Condition,
    EndNode,
    FlowDefinition,
    HandoffNode,
    InputCondition,
    InputNode,
    MessageNode,
    Node,
    NotCondition,
    QuestionNode,
    SetNode,
    VarCondition,
)


@dataclass(frozen=True)
class Exit:
    """One arrow out of a node. ``key`` is what ``node_exited`` events carry; ``label`` is what
    the arrow says; ``kind`` is ``"normal"``, ``"fallback"`` (default, invalid reply, model
    error) or ``"timeout"``."""

    key: str
    target: str
    label: str
    kind: str = "normal"


_OPERATORS = {
    "eq": "is",
    "ne": "is not",
    "in": "is one of",
    "contains": "contains",
    "matches": "matches",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
}


def _value(value: object) -> str:
    """A compared value as people read it: a plain word as is, a text with spaces or
    punctuation in quotes (so ``"a and y is b"`` never reads as two conditions)."""
    if isinstance(value, str):
        plain = value and all(ch.isalnum() or ch in "-_.@+" for ch in value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value)
    return json.dumps(value)


def describe_condition(condition: Condition) -> str:
    """``{"all": [{"var": "especialidade", "op": "eq", "value": "pediatria"}, ...]}`` reads
    ``especialidade is pediatria and idade ≥ 18``. Nested groups are parenthesised."""
    if isinstance(condition, AllCondition | AnyCondition):
        items = condition.all if isinstance(condition, AllCondition) else condition.any
        joiner = " and " if isinstance(condition, AllCondition) else " or "
        parts = []
        for item in items:
            text = describe_condition(item)
            parts.append(f"({text})" if isinstance(item, AllCondition | AnyCondition) else text)
        return joiner.join(parts)
    if isinstance(condition, NotCondition):
        inner = describe_condition(condition.not_)
        simple = isinstance(condition.not_, VarCondition | InputCondition)
        return f"not {inner}" if simple else f"not ({inner})"
    subject = condition.var if isinstance(condition, VarCondition) else "the reply"
    if condition.op == "exists":
        return f"{subject} is set"
    return f"{subject} {_OPERATORS[condition.op]} {_value(condition.value)}"


def _timeout_label(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"no reply in {hours} h"
    if seconds % 60 == 0:
        return f"no reply in {seconds // 60} min"
    return f"no reply in {seconds} s"


def _waiting_exits(node: QuestionNode | InputNode) -> Iterator[Exit]:
    if node.on_invalid is not None:
        yield Exit("invalid", node.on_invalid, "invalid reply", "fallback")
    if node.timeout is not None:
        yield Exit("timeout", node.timeout.next, _timeout_label(node.timeout.seconds), "timeout")


def node_exits(node: Node) -> list[Exit]:
    """Every arrow out of ``node``, in the order the node tries them."""
    if isinstance(node, MessageNode | SetNode):
        return [Exit("next", node.next, "")] if node.next is not None else []
    if isinstance(node, QuestionNode):
        choices = [Exit(f"choice:{c.id}", c.next, c.label) for c in node.choices]
        return [*choices, *_waiting_exits(node)]
    if isinstance(node, InputNode):
        rule = node.validate_ if isinstance(node.validate_, str) else "pattern"
        label = "answer" if rule == "any" else f"valid {rule}"
        return [Exit("next", node.next, label), *_waiting_exits(node)]
    if isinstance(node, BranchNode):
        cases = [
            Exit(f"case:{number}", case.next, describe_condition(case.when))
            for number, case in enumerate(node.cases, 1)
        ]
        return [*cases, Exit("default", node.default, "otherwise", "fallback")]
    if isinstance(node, AINode):
        exits = []
        if node.next is not None:
            exits.append(Exit("next", node.next, f"after {node.max_turns} turns or exit word"))
        if node.on_error is not None:
            exits.append(Exit("error", node.on_error, "model error", "fallback"))
        return exits
    return []


def is_terminal(node: Node) -> bool:
    """An ``end`` or ``handoff`` node: the session is meant to finish there."""
    return isinstance(node, EndNode | HandoffNode)


def dead_ends(definition: FlowDefinition) -> list[str]:
    """Nodes that are not ``end`` or ``handoff`` but have nowhere to go, so the session stops
    there without a goodbye: a ``message`` without ``next``, or an ``ai`` node without ``next``
    (after its last turn or an exit word). The other node types always have a way on."""
    return [
        node.id
        for node in definition.nodes
        if isinstance(node, MessageNode | AINode) and node.next is None
    ]


def unreachable(definition: FlowDefinition) -> list[str]:
    """Nodes no path from ``start`` reaches (validation refuses them in new uploads; versions
    stored before that rule may still have some)."""
    seen = {definition.start}
    stack = [definition.start]
    while stack:
        node = definition.get_node(stack.pop())
        if node is None:
            continue
        for exit in node_exits(node):
            if exit.target not in seen:
                seen.add(exit.target)
                stack.append(exit.target)
    return [node.id for node in definition.nodes if node.id not in seen]
