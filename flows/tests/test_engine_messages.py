"""What validation says: no doubled words in any message, and the node id next to its index.

The corpus is every valid example with one thing broken at a time: each value replaced by values
of the wrong kind, each key removed, an unknown key added to each object. Every issue the
validator produces for it is read the way people see it (``location: message``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from flows.engine import ValidationIssue, validate_flow
from flows.engine.reading import MAX_FLOW_BYTES, FlowReadError, flow_json_from_bytes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

# Values put in place of each value of a valid flow; none of them holds a doubled word itself.
BAD_VALUES: list[object] = [
    None,
    True,
    -1,
    10**6,
    2.5,
    "",
    "   ",
    "Bad Id!",
    "x" * 5000,
    "{{ nope }}",
    "{{ vars.Bad }}",
    "(",
    "ftp://example.com/a.png",
    [],
    [1, "two"],
    {},
    {"op": "eq"},
    {"var": "v", "op": "exists", "value": 1},
    {"input": False, "op": "matches", "value": "("},
    {"var": "v", "op": "gt", "value": "ten"},
    {"regex": "[a-"},
    {"seconds": 5, "next": "nowhere"},
]
DOUBLED = re.compile(r"\b([A-Za-z]+)\b[^A-Za-z0-9]+\b\1\b", re.IGNORECASE)


def _locations(value: Any, loc: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*loc, key)
            yield from _locations(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*loc, index)
            yield from _locations(item, (*loc, index))


def _parent(document: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc[:-1]:
        document = document[part]
    return document


def _broken(document: dict[str, Any]) -> Iterator[object]:
    yield from ([], "flow", None, {}, {"nodes": "none"})
    for loc in list(_locations(document)):
        for bad in BAD_VALUES:
            copied = copy.deepcopy(document)
            _parent(copied, loc)[loc[-1]] = copy.deepcopy(bad)
            yield copied
        if isinstance(loc[-1], str):
            copied = copy.deepcopy(document)
            del _parent(copied, loc)[loc[-1]]
            yield copied
        target = _parent(document, (*loc, None))
        if isinstance(target, dict):
            copied = copy.deepcopy(document)
            _parent(copied, (*loc, None))["colour"] = "blue"
            yield copied
    # graph problems: duplicate ids, unreachable nodes, loops that never wait, too many nodes
    nodes = document["nodes"]
    yield {**document, "nodes": [*nodes, copy.deepcopy(nodes[-1])]}
    yield {**document, "nodes": [*nodes, {"id": "orphan", "type": "end"}]}
    yield {
        **document,
        "start": "a",
        "nodes": [
            {"id": "a", "type": "message", "text": "A", "next": "b"},
            {"id": "b", "type": "set", "values": {"v": "1"}, "next": "a"},
        ],
    }
    yield {**document, "nodes": [{"id": f"n{i}", "type": "end"} for i in range(1001)]}


@cache
def corpus() -> list[tuple[object, list[ValidationIssue]]]:
    documents = [json.loads(path.read_text()) for path in sorted(EXAMPLES.glob("*.json"))]
    assert documents
    return [
        (broken, validate_flow(broken)) for document in documents for broken in _broken(document)
    ]


def test_the_corpus_is_broad() -> None:
    messages = {issue.message for _, issues in corpus() for issue in issues}
    assert sum(1 for _, issues in corpus() if issues) > 3000
    assert len(messages) > 150


def test_no_message_repeats_a_word() -> None:
    lines = {str(issue) for _, issues in corpus() for issue in issues}
    doubled = sorted(line for line in lines if DOUBLED.search(line))
    assert doubled == []


def test_the_doubled_word_check_finds_doubled_words() -> None:
    assert DOUBLED.search("is not valid JSON: json error")
    assert DOUBLED.search("the the flow")
    assert DOUBLED.search('unknown "node" node')
    assert not DOUBLED.search("is not valid JSON: Expecting value at line 1, column 1")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"a": 1,}',
        b"[1 2]",
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{",
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b"1" * 5000,
        b'"' + b"x" * (MAX_FLOW_BYTES + 1) + b'"',
        b"{'single': 'quotes'}",
        b"NaN-ish",
    ],
)
def test_reading_errors_have_no_doubled_words(raw: bytes) -> None:
    with pytest.raises(FlowReadError) as caught:
        flow_json_from_bytes(raw)
    message = f"the file {caught.value.reason}"
    assert not DOUBLED.search(message), message
    assert caught.value.kind in {"size", "encoding", "json"}


def test_json_syntax_errors_give_line_and_column() -> None:
    with pytest.raises(FlowReadError) as caught:
        flow_json_from_bytes(b'{\n  "flow_id": ,\n}')
    assert caught.value.reason == "is not valid JSON: Expecting value at line 2, column 14"
    assert caught.value.kind == "json"


def test_every_issue_inside_a_node_names_the_node_id() -> None:
    checked = 0
    for document, issues in corpus():
        raw_nodes = document.get("nodes") if isinstance(document, dict) else None
        for issue in issues:
            match = re.match(r"nodes\[(\d+)\]", issue.path)
            if match is None:
                assert issue.node is None
                assert issue.location == issue.path
                continue
            node = raw_nodes[int(match.group(1))]  # type: ignore[index]
            node_id = node.get("id") if isinstance(node, dict) else None
            if isinstance(node_id, str) and SLUG.fullmatch(node_id):
                assert issue.node == node_id
                assert issue.location == issue.path.replace(
                    match.group(0), f"{match.group(0)}({node_id})", 1
                )
                checked += 1
            else:
                # an id that is not a slug has an issue of its own and is never echoed
                assert issue.node is None
                assert issue.location == issue.path
    assert checked > 500


def test_location_puts_the_id_after_the_index_and_path_stays_a_json_path() -> None:
    document = json.loads((EXAMPLES / "fitness-welcome.json").read_text())
    index = next(i for i, node in enumerate(document["nodes"]) if node["type"] == "question")
    node_id = document["nodes"][index]["id"]
    document["nodes"][index]["choices"][1]["next"] = "pricing"

    issues = validate_flow(document)
    issue = next(issue for issue in issues if issue.message == 'unknown node "pricing"')

    assert issue.path == f"nodes[{index}].choices[1].next"
    assert issue.node == node_id
    assert issue.location == f"nodes[{index}]({node_id}).choices[1].next"
    assert str(issue) == f'nodes[{index}]({node_id}).choices[1].next: unknown node "pricing"'


def test_issues_outside_nodes_and_at_the_root_have_no_node() -> None:
    (root,) = validate_flow([])
    assert (root.path, root.node, root.location) == ("", None, "")
    assert str(root) == "a flow must be a JSON object, not []"
    document = json.loads((EXAMPLES / "fitness-welcome.json").read_text())
    document["start"] = "nowhere"
    issues = validate_flow(document)
    start = next(issue for issue in issues if issue.path == "start")
    assert start.node is None and start.location == "start"
