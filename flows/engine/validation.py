"""Whole-document validation: ``parse_flow`` and ``validate_flow``.

Validation reports every problem at once, each with a JSON path (``nodes[3].choices[1].next``) and,
when the path leads into a node with a valid id, that id (``ask_day``); people read both as
``nodes[3](ask_day).choices[1].next`` (:attr:`ValidationIssue.location`).
It runs in two passes over the same document and merges their findings:

1. the pydantic models (:mod:`flows.engine.definition`): types, limits, unknown keys, templates,
   regexes, operator/value pairs;
2. a graph pass over the raw document, written to tolerate any shape, so that a broken
   reference is reported together with a type error elsewhere: unique node ids, references,
   reachability from ``start``, and cycles that never wait for the contact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from core.storable import unstorable

from .definition import (
    MAX_NODES,
    NODE_TYPES,
    SLUG_PATTERN,
    VARIABLE_PATTERN,
    WAITING_NODE_TYPES,
    FlowDefinition,
)
from .text import normalize

MAX_ISSUES = 500
_NODE_PREFIX = re.compile(r"nodes\[(\d+)\]")

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in a flow document: where and what.

    ``path`` is a plain JSON path (``nodes[3].choices[1].next``, ``""`` for the root) that a
    program can follow into the document; ``node`` is the id of the node it leads into
    (``nodes[3]``'s ``"id"``) when that id is a valid node id (a slug), else ``None`` (an id that is
    not a slug has its own issue, and is never echoed: it may hold anything). ``location`` is the
    form for people, with the id after the index: ``nodes[3](ask_day).choices[1].next``.
    """

    path: str
    message: str
    node: str | None = None

    @property
    def location(self) -> str:
        """``path`` with the node id after the node's index; ``""`` for the root."""
        match = _NODE_PREFIX.match(self.path)
        if self.node is None or match is None:
            return self.path
        return f"{match.group(0)}({self.node}){self.path[match.end() :]}"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.path else self.message


class FlowValidationError(Exception):
    """A flow document is invalid. ``issues`` lists every problem found, never empty."""

    def __init__(self, issues: Sequence[ValidationIssue]) -> None:
        self.issues: list[ValidationIssue] = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def format_path(loc: Sequence[str | int]) -> str:
    """Turn a location tuple into a JSON path: ``("nodes", 3, "next")`` -> ``nodes[3].next``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part, ensure_ascii=False)}]"
    return path


# --- pass 1: pydantic errors, translated --------------------------------------------------

_PATTERN_MESSAGES = {
    SLUG_PATTERN: "must be a slug: 1-64 lowercase letters, digits, '_' or '-', "
    "starting with a letter or digit",
    VARIABLE_PATTERN: "must be a variable name: 1-40 lowercase letters, digits or '_', "
    "starting with a letter",
}
_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "float_type": "a number",
}
_TAG_PREFIXES = ("node:", "cond:", "rule:")


def _clean_loc(loc: Sequence[str | int]) -> Loc:
    # Discriminated unions add their tag ("node:question") to the location; it is not in the JSON.
    parts = [part for part in loc if not (isinstance(part, str) and part.startswith(_TAG_PREFIXES))]
    if parts and parts[-1] == "[key]":
        parts.pop()
    return tuple(parts)


def _describe(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _pattern_mismatch(error: ErrorDetails, ctx: Mapping[str, Any], loc: Loc) -> str:
    pattern = str(ctx.get("pattern", ""))
    return f"{_describe(error['input'])} {_PATTERN_MESSAGES.get(pattern, f'must match {pattern}')}"


def _out_of_bounds(error: ErrorDetails, ctx: Mapping[str, Any], loc: Loc) -> str:
    bounds = {"ge": ">=", "le": "<=", "gt": ">", "lt": "<"}
    limits = ", ".join(f"{bounds[key]} {ctx[key]}" for key in bounds if key in ctx)
    return f"must be {limits}, not {_describe(error['input'])}"


def _unknown_node_type(error: ErrorDetails, ctx: Mapping[str, Any], loc: Loc) -> str:
    tag = str(ctx.get("tag", "")).removeprefix("node:")
    return f"unknown node type {_describe(tag)}: expected one of {', '.join(NODE_TYPES)}"


def _missing_node_type(error: ErrorDetails, ctx: Mapping[str, Any], loc: Loc) -> str:
    if isinstance(error["input"], Mapping):
        return f'needs a "type": one of {", ".join(NODE_TYPES)}'
    return f"must be an object, not {_describe(error['input'])}"


def _invalid_condition(error: ErrorDetails, ctx: Mapping[str, Any], loc: Loc) -> str:
    if isinstance(error["input"], Mapping):
        return error["msg"]
    return f"must be a condition object, not {_describe(error['input'])}"


_Message = Callable[[ErrorDetails, Mapping[str, Any], Loc], str]


def _wrong_type(name: str) -> _Message:
    return lambda error, ctx, loc: f"must be {name}, not {_describe(error['input'])}"


# pydantic's error type -> what a person reads (anything else: pydantic's own message).
_MESSAGES: dict[str, _Message] = {
    "missing": lambda error, ctx, loc: "is required",
    "extra_forbidden": lambda error, ctx, loc: (
        f"unknown key {_describe(loc[-1]) if loc else ''}".rstrip()
    ),
    **{kind: _wrong_type(name) for kind, name in _TYPE_NAMES.items()},
    "string_pattern_mismatch": _pattern_mismatch,
    "string_too_short": lambda error, ctx, loc: "must not be empty",
    "string_too_long": lambda error, ctx, loc: f"is longer than {ctx.get('max_length')} characters",
    "too_short": lambda error, ctx, loc: f"needs at least {ctx.get('min_length')} item(s)",
    "too_long": lambda error, ctx, loc: f"has more than {ctx.get('max_length')} items",
    **dict.fromkeys(
        ("greater_than_equal", "less_than_equal", "greater_than", "less_than"), _out_of_bounds
    ),
    "literal_error": lambda error, ctx, loc: (
        f"must be one of {ctx.get('expected')}, not {_describe(error['input'])}"
    ),
    "union_tag_invalid": _unknown_node_type,
    "union_tag_not_found": _missing_node_type,
    "invalid_condition": _invalid_condition,
    "recursion_loop": lambda error, ctx, loc: "is nested too deeply",
    "recursion_depth_exceeded": lambda error, ctx, loc: "is nested too deeply",
    "value_error": lambda error, ctx, loc: error["msg"].removeprefix("Value error, "),
}


def _translate(error: ErrorDetails) -> ValidationIssue:
    """One pydantic error as a flow author reads it, at its JSON path."""
    loc = _clean_loc(error["loc"])
    build = _MESSAGES.get(error["type"])
    message = build(error, error.get("ctx") or {}, loc) if build else error["msg"]
    return ValidationIssue(path=format_path(loc), message=message)


def _model_issues(document: Mapping[str, Any]) -> list[ValidationIssue]:
    try:
        FlowDefinition.model_validate(document)
    except ValidationError as exc:
        return [_translate(error) for error in exc.errors()]
    return []


# --- pass 2: the graph, on the raw document ----------------------------------------------

# For each node type, where it names other nodes.
_SIMPLE_REFS: dict[str, tuple[str, ...]] = {
    "message": ("next",),
    "question": ("on_invalid",),
    "input": ("next", "on_invalid"),
    "branch": ("default",),
    "set": ("next",),
    "ai": ("next", "on_error"),
    "handoff": (),
    "end": (),
}
_ALL_SIMPLE_REFS = ("next", "default", "on_invalid", "on_error")


def _references(node: Mapping[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Every (location inside the node, node id) the node refers to; skips malformed parts."""
    node_type = node.get("type")
    keys = _SIMPLE_REFS.get(node_type, _ALL_SIMPLE_REFS) if isinstance(node_type, str) else ()
    for key in keys:
        target = node.get(key)
        if isinstance(target, str):
            yield (key,), target
    timeout = node.get("timeout")
    if isinstance(timeout, Mapping) and isinstance(timeout.get("next"), str):
        yield ("timeout", "next"), timeout["next"]
    for key in ("choices", "cases"):
        items = node.get(key)
        if isinstance(items, list):
            for index, item in enumerate(items):
                if isinstance(item, Mapping) and isinstance(item.get("next"), str):
                    yield (key, index, "next"), item["next"]


def _graph_issues(document: Mapping[str, Any]) -> list[ValidationIssue]:
    raw_nodes = document.get("nodes")
    if not isinstance(raw_nodes, list):
        return []
    issues: list[ValidationIssue] = []
    index_of: dict[str, int] = {}
    nodes: list[tuple[int, Mapping[str, Any]]] = []
    for index, node in enumerate(raw_nodes[:MAX_NODES]):
        if not isinstance(node, Mapping):
            continue
        nodes.append((index, node))
        node_id = node.get("id")
        if not isinstance(node_id, str):
            continue
        if node_id in index_of:
            issues.append(
                ValidationIssue(
                    f"nodes[{index}].id",
                    f'duplicate node id "{node_id}" (also nodes[{index_of[node_id]}])',
                )
            )
        else:
            index_of[node_id] = index

    edges: dict[str, list[str]] = {node_id: [] for node_id in index_of}
    for index, node in nodes:
        node_id = node.get("id")
        for loc, target in _references(node):
            if target not in index_of:
                path = format_path(("nodes", index, *loc))
                issues.append(ValidationIssue(path, f'unknown node "{target}"'))
            elif isinstance(node_id, str) and index_of.get(node_id) == index:
                edges[node_id].append(target)

    start = document.get("start")
    if isinstance(start, str):
        if start not in index_of:
            issues.append(ValidationIssue("start", f'unknown node "{start}"'))
        else:
            reached = _reachable(start, edges)
            for node_id, index in index_of.items():
                if node_id not in reached:
                    issues.append(
                        ValidationIssue(f"nodes[{index}]", "cannot be reached from start")
                    )

    waiting = {
        node_id
        for node_id, index in index_of.items()
        if raw_nodes[index].get("type") in WAITING_NODE_TYPES
        or raw_nodes[index].get("type") not in NODE_TYPES
    }
    for cycle in _cycles_without(waiting, edges):
        loop = " -> ".join([*cycle, cycle[0]])
        issues.append(
            ValidationIssue(
                f"nodes[{index_of[cycle[0]]}]",
                "loop that never waits for the contact (a cycle must pass through a question, "
                f"input or ai node): {loop}",
            )
        )
    issues.extend(_choice_issues(nodes))
    return issues


def _reachable(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in edges.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _cycles_without(excluded: set[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """One concrete cycle per strongly connected component that avoids ``excluded`` nodes.

    Iterative Tarjan, so a 1000-node chain cannot exhaust the Python stack.
    """
    graph = {
        node: [t for t in targets if t not in excluded]
        for node, targets in edges.items()
        if node not in excluded
    }
    index_counter = 0
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = index_counter
                index_counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    cycles = []
    for component in components:
        members = set(component)
        if len(component) == 1 and component[0] not in graph[component[0]]:
            continue
        cycles.append(_cycle_in(min(component), members, graph))
    return cycles


def _cycle_in(start: str, members: set[str], graph: Mapping[str, list[str]]) -> list[str]:
    """A path start -> ... -> start inside one strongly connected component (breadth-first)."""
    previous: dict[str, str] = {}
    queue = [start]
    for node in queue:
        for target in graph[node]:
            if target not in members:
                continue
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return list(reversed(path))
            if target not in previous:
                previous[target] = node
                queue.append(target)
    return [start]  # unreachable for a real component


def _choice_issues(nodes: list[tuple[int, Mapping[str, Any]]]) -> list[ValidationIssue]:
    """Duplicate choice ids, and replies that would match two choices of one question."""
    issues = []
    for index, node in nodes:
        choices = node.get("choices")
        if node.get("type") != "question" or not isinstance(choices, list):
            continue
        ids: dict[str, int] = {}
        terms: dict[str, int] = {}
        for position, choice in enumerate(choices):
            if not isinstance(choice, Mapping):
                continue
            choice_id = choice.get("id")
            if isinstance(choice_id, str):
                if choice_id in ids:
                    issues.append(
                        ValidationIssue(
                            f"nodes[{index}].choices[{position}].id",
                            f'duplicate choice id "{choice_id}" (also choices[{ids[choice_id]}])',
                        )
                    )
                ids.setdefault(choice_id, position)
            keywords = choice.get("keywords")
            candidates = [
                ("id", choice_id),
                ("label", choice.get("label")),
                *(
                    (f"keywords[{k}]", keyword)
                    for k, keyword in enumerate(keywords if isinstance(keywords, list) else [])
                ),
            ]
            own: set[str] = set()
            for where, term in candidates:
                # Terms made only of emoji are left out: stored flows load through this
                # validation, and a repeated emoji label only means the first choice wins.
                if not isinstance(term, str) or not normalize(term):
                    continue
                key = normalize(term)
                owner = terms.get(key)
                if owner is not None and owner != position and key not in own:
                    issues.append(
                        ValidationIssue(
                            f"nodes[{index}].choices[{position}].{where}",
                            f'"{term}" also matches choices[{owner}]; a reply must pick one choice',
                        )
                    )
                own.add(key)
                terms.setdefault(key, position)
    return issues


# --- entry points -------------------------------------------------------------------------


def _sort_key(issue: ValidationIssue) -> tuple[tuple[int, int | str], ...]:
    parts = re.findall(r"\[(\d+)\]|\[(\"(?:[^\"\\]|\\.)*\")\]|\.?([^.\[]+)", issue.path)
    return tuple((0, int(num)) if num else (1, quoted or name) for num, quoted, name in parts)


def _with_node(issue: ValidationIssue, raw_nodes: object) -> ValidationIssue:
    """``issue`` with the id of the node its path leads into, when that id is a slug."""
    match = _NODE_PREFIX.match(issue.path)
    if match is None or not isinstance(raw_nodes, list):
        return issue
    index = int(match.group(1))
    node = raw_nodes[index] if index < len(raw_nodes) else None
    node_id = node.get("id") if isinstance(node, Mapping) else None
    if not isinstance(node_id, str) or not re.fullmatch(SLUG_PATTERN, node_id):
        return issue
    return ValidationIssue(issue.path, issue.message, node=node_id)


def _collect(document: object) -> list[ValidationIssue]:
    if not isinstance(document, Mapping):
        return [ValidationIssue("", f"a flow must be a JSON object, not {_describe(document)}")]
    issues: list[ValidationIssue] = []
    raw_nodes = document.get("nodes")
    if isinstance(raw_nodes, list) and len(raw_nodes) > MAX_NODES:
        # Checked here so that the first MAX_NODES nodes are still checked one by one.
        issues.append(
            ValidationIssue("nodes", f"has {len(raw_nodes)} nodes; at most {MAX_NODES} allowed")
        )
        document = {**document, "nodes": raw_nodes[:MAX_NODES]}
    issues.extend(_model_issues(document))
    issues.extend(_graph_issues(document))
    # Valid JSON, but not storable (PostgreSQL refuses NUL; UTF-8 refuses lone surrogates).
    issues.extend(
        ValidationIssue(format_path(loc), problem) for loc, problem in unstorable(document)
    )
    unique = [_with_node(issue, raw_nodes) for issue in dict.fromkeys(issues)]
    unique.sort(key=_sort_key)
    if len(unique) > MAX_ISSUES:
        hidden = len(unique) - MAX_ISSUES
        unique = [*unique[:MAX_ISSUES], ValidationIssue("", f"... and {hidden} more problems")]
    return unique


def validate_flow(document: object) -> list[ValidationIssue]:
    """Every problem of ``document`` (parsed JSON), sorted by path; ``[]`` when it is valid.

    Never raises, whatever ``document`` is.
    """
    try:
        return _collect(document)
    except Exception as exc:  # a bug here must not turn an upload into a 500
        return [ValidationIssue("", f"could not validate this flow ({type(exc).__name__})")]


def parse_flow(document: object) -> FlowDefinition:
    """Validate ``document`` (parsed JSON) in full and return the definition.

    Raises :class:`FlowValidationError` listing every problem at once, and no other exception
    for any input. The returned definition satisfies every rule of the format.
    """
    issues = validate_flow(document)
    if issues:
        raise FlowValidationError(issues)
    try:
        return FlowDefinition.model_validate(document)
    except Exception as exc:  # pragma: no cover - validate_flow already accepted it
        raise FlowValidationError([ValidationIssue("", f"invalid flow: {exc}")]) from None
