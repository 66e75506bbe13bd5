"""A flow version drawn as a graph: boxes for nodes, labelled arrows for their exits.

Graphviz's `dot` (the `graphviz-pure` wheel, a self-contained build installed by pip) places
the boxes and routes the arrows; we draw the SVG ourselves from its coordinates (a template),
so the page controls every class and link and needs no inline style under the strict CSP.
A stored version never changes, so its layout is computed once and cached; the counts drawn
over it come from `flows.selectors.flow_path_counts` for the chosen period.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from django.core.cache import cache

from flows.engine import FlowDefinition
from flows.engine.definition import (
    AINode,
    BranchNode,
    EndNode,
    HandoffNode,
    InputNode,
    MessageNode,
    Node,
    QuestionNode,
    SetNode,
)
from flows.engine.graph import dead_ends, node_exits, unreachable

logger = logging.getLogger(__name__)

LAYOUT_VERSION = 2  # bump when the drawing changes, so cached layouts are recomputed
LAYOUT_CACHE_SECONDS = 7 * 24 * 3600
FAILURE_CACHE_SECONDS = 3600  # a version dot could not draw is not tried again for an hour
DOT_TIMEOUT_SECONDS = 10  # inside a page request (gunicorn's timeout is 30 s)

NODE_WIDTH = 240  # points (1 pt is drawn as 1 SVG unit)
LINE_HEIGHT = 15
HEADER_HEIGHT = 24
COUNTS_HEIGHT = 22
PADDING = 8
TEXT_CHARS = 34  # per line at 12 px in a 240 pt box
TEXT_LINES = 3
LABEL_CHARS = 26
LABEL_LINE = 13
MARGIN = 12
LABELLED_EDGES_MAX = 80


class DiagramUnavailable(Exception):
    """The layout program is missing or failed; the page falls back to the node table."""


@dataclass(frozen=True)
class DiagramNode:
    id: str
    type: str
    lines: tuple[str, ...]
    text: str
    x: float
    y: float
    width: float
    height: float
    is_start: bool = False
    is_dead_end: bool = False
    is_unreachable: bool = False

    @property
    def text_x(self) -> float:
        return self.x + PADDING

    @property
    def title_y(self) -> float:
        return self.y + 14

    @property
    def text_rows(self) -> list[tuple[float, str]]:
        """(baseline, line) of the box's words."""
        top = self.y + HEADER_HEIGHT + LINE_HEIGHT - 3
        return [(top + LINE_HEIGHT * index, line) for index, line in enumerate(self.lines)]

    @property
    def counts_y(self) -> float:
        return self.y + self.height - 8


@dataclass(frozen=True)
class DiagramEdge:
    source: str
    key: str
    target: str
    label_lines: tuple[str, ...]
    label: str
    kind: str
    path: str
    arrow: str
    label_x: float
    label_y: float

    @property
    def label_rows(self) -> list[tuple[float, str]]:
        """(baseline, line) of the label's words; the count goes on `count_y`, below them."""
        first = self.label_y - LABEL_LINE * len(self.label_lines) / 2 + 4
        return [(first + LABEL_LINE * index, line) for index, line in enumerate(self.label_lines)]

    @property
    def count_y(self) -> float:
        return self.label_y + LABEL_LINE * len(self.label_lines) / 2 + 4


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]
    dead_ends: tuple[str, ...] = field(default=())
    unreachable: tuple[str, ...] = field(default=())


# --- what each box says ---------------------------------------------------------------------


def node_summary(node: Node) -> str:
    """The words a box shows for ``node``: what it says or does."""
    if isinstance(node, MessageNode | QuestionNode):
        return node.text
    if isinstance(node, InputNode):
        return f"{node.text} → saves vars.{node.save_as}"
    if isinstance(node, BranchNode):
        return "chooses the way on"
    if isinstance(node, SetNode):
        return "sets " + ", ".join(f"{name} = {value}" for name, value in node.values.items())
    if isinstance(node, AINode):
        return f"AI: {node.instructions}"
    if isinstance(node, HandoffNode):
        words = node.text or ""
        reason = f"hands over ({node.reason})" if node.reason else "hands over to a person"
        return f"{words} → {reason}" if words else reason
    if isinstance(node, EndNode):
        return node.text or "ends the flow"
    return ""  # pragma: no cover - every node type is handled above


def _wrap(text: str, width: int, lines: int) -> tuple[str, ...]:
    flat = " ".join(text.split())
    wrapped = textwrap.wrap(flat, width, break_long_words=True, max_lines=lines, placeholder=" …")
    return tuple(wrapped) or ("",)


def _label_lines(label: str) -> tuple[str, ...]:
    return _wrap(label, LABEL_CHARS, 2) if label else ()


# --- dot in, coordinates out ----------------------------------------------------------------


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _dot_source(definition: FlowDefinition, lines: dict[str, tuple[str, ...]]) -> str:
    edges = [(node, exit) for node in definition.nodes for exit in node_exits(node)]
    large = len(edges) > LABELLED_EDGES_MAX
    # Past a size, dot's label nodes and curved routing cost tens of seconds (measured: 100
    # questions with 5 choices, a timeout and an invalid way each, over 20 s); labels placed
    # after the layout, straight arrows and a short crossing search keep it under a second.
    fast = ", splines=line, mclimit=0.05, nslimit=1" if large else ""
    out = [
        "digraph flow {",
        f'  graph [rankdir=TB, nodesep=0.35, ranksep=0.55, fontname="Arimo", fontsize=11{fast}];',
        '  node [shape=box, fixedsize=true, fontname="Arimo", fontsize=12, label=""];',
        '  edge [fontname="Arimo", fontsize=11];',
    ]
    for node in definition.nodes:
        height = HEADER_HEIGHT + LINE_HEIGHT * len(lines[node.id]) + COUNTS_HEIGHT + PADDING
        out.append(f"  {_quote(node.id)} [width={NODE_WIDTH / 72:.3f}, height={height / 72:.3f}];")
    # A label is a node of its own to dot: exact room, but layout time grows steeply with
    # many crossing arrows. Past a size, labels are placed after the layout (xlabel).
    attribute = "xlabel" if large else "label"
    for node, exit in edges:
        # The label reserves room for the exit's words and, below them, its count.
        label = "\\n".join(_escape(line) for line in [*_label_lines(exit.label), "0000"])
        out.append(
            f"  {_quote(node.id)} -> {_quote(exit.target)} "
            f'[{attribute}="{label}", id={_quote(node.id + " " + exit.key)}];'
        )
    out.append("}")
    return "\n".join(out)


def _escape(line: str) -> str:
    """A line of a dot label: backslashes and quotes escaped (dot reads ``\\n`` etc.)."""
    return line.replace("\\", "\\\\").replace('"', '\\"')


def _dot_program() -> str:
    beside = Path(sys.executable).with_name("graphviz-pure")
    found = str(beside) if beside.exists() else shutil.which("graphviz-pure")
    if not found:
        raise DiagramUnavailable("the graphviz-pure program is not installed")
    return found


def _run_dot(source: str) -> dict:
    try:
        completed = subprocess.run(  # noqa: S603 - fixed program, source on stdin
            [_dot_program(), "-Tjson0"],
            input=source.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiagramUnavailable(type(exc).__name__) from exc
    if completed.returncode != 0:
        raise DiagramUnavailable(f"dot exited with status {completed.returncode}")
    try:
        return json.loads(completed.stdout)
    except ValueError as exc:
        raise DiagramUnavailable("dot wrote no JSON") from exc


def _point(text: str) -> tuple[float, float]:
    x, y = text.split(",")[:2]
    return float(x), float(y)


def _spline(pos: str, flip: float) -> tuple[str, str]:
    """Graphviz's ``e,x,y p0 p1 ...`` (B-spline control points, arrow tip) as an SVG path
    and the arrowhead's polygon."""
    end = None
    points: list[tuple[float, float]] = []
    for token in pos.split():
        if token.startswith("e,"):
            end = _point(token[2:])
        elif token.startswith("s,"):
            continue
        else:
            points.append(_point(token))
    points = [(x + MARGIN, flip - y + MARGIN) for x, y in points]
    first, rest = points[0], points[1:]
    path = f"M{first[0]:.1f},{first[1]:.1f}"
    for index in range(0, len(rest) - len(rest) % 3, 3):
        (x1, y1), (x2, y2), (x3, y3) = rest[index : index + 3]
        path += f" C{x1:.1f},{y1:.1f} {x2:.1f},{y2:.1f} {x3:.1f},{y3:.1f}"
    arrow = ""
    if end is not None:
        tip = (end[0] + MARGIN, flip - end[1] + MARGIN)
        base = points[-1]
        dx, dy = tip[0] - base[0], tip[1] - base[1]
        length = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / length * 4.5, dx / length * 4.5
        arrow = (
            f"{tip[0]:.1f},{tip[1]:.1f} {base[0] + nx:.1f},{base[1] + ny:.1f} "
            f"{base[0] - nx:.1f},{base[1] - ny:.1f}"
        )
    return path, arrow


def compute_layout(definition: FlowDefinition) -> Layout:
    """Lay ``definition`` out with dot. Raises `DiagramUnavailable` when dot cannot run or
    answers with something we cannot read."""
    texts = {node.id: node_summary(node) for node in definition.nodes}
    lines = {node_id: _wrap(text, TEXT_CHARS, TEXT_LINES) for node_id, text in texts.items()}
    graph = _run_dot(_dot_source(definition, lines))
    try:
        return _read_layout(definition, graph, texts, lines)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise DiagramUnavailable(f"unexpected dot output ({type(exc).__name__})") from exc


def _read_layout(
    definition: FlowDefinition,
    graph: dict,
    texts: dict[str, str],
    lines: dict[str, tuple[str, ...]],
) -> Layout:
    """The boxes and arrows of dot's JSON answer, in SVG coordinates."""
    x0, y0, x1, y1 = (float(v) for v in graph["bb"].split(","))
    flip = y1
    dead, lost = set(dead_ends(definition)), set(unreachable(definition))
    by_gvid: dict[int, str] = {}
    nodes = []
    types = {node.id: node.type for node in definition.nodes}
    for obj in graph.get("objects", []):
        node_id = obj["name"]
        by_gvid[obj["_gvid"]] = node_id
        cx, cy = _point(obj["pos"])
        width, height = float(obj["width"]) * 72, float(obj["height"]) * 72
        nodes.append(
            DiagramNode(
                id=node_id,
                type=types[node_id],
                lines=lines[node_id],
                text=texts[node_id],
                x=round(cx - width / 2 + MARGIN, 1),
                y=round(flip - cy - height / 2 + MARGIN, 1),
                width=round(width, 1),
                height=round(height, 1),
                is_start=node_id == definition.start,
                is_dead_end=node_id in dead,
                is_unreachable=node_id in lost,
            )
        )
    exits = {(node.id, exit.key): exit for node in definition.nodes for exit in node_exits(node)}
    edges = []
    for raw in graph.get("edges", []):
        source, key = raw["id"].split(" ", 1)
        exit = exits[(source, key)]
        path, arrow = _spline(raw["pos"], flip)
        lx, ly = _point(raw.get("lp") or raw.get("xlp") or "0,0")
        edges.append(
            DiagramEdge(
                source=source,
                key=key,
                target=by_gvid.get(raw["head"], exit.target),
                label_lines=_label_lines(exit.label),
                label=exit.label,
                kind=exit.kind,
                path=path,
                arrow=arrow,
                label_x=round(lx + MARGIN, 1),
                label_y=round(flip - ly + MARGIN, 1),
            )
        )
    return Layout(
        width=round(x1 - x0 + 2 * MARGIN, 1),
        height=round(y1 - y0 + 2 * MARGIN, 1),
        nodes=tuple(nodes),
        edges=tuple(edges),
        dead_ends=tuple(sorted(dead)),
        unreachable=tuple(sorted(lost)),
    )


class DiagramPending(DiagramUnavailable):
    """Another request is drawing this version right now."""


def flow_layout(*, flow_pk: object, definition: FlowDefinition) -> Layout:
    """The layout of a stored flow version, computed once and cached (versions never change).

    One process draws a version at a time (a cache lock: others get `DiagramPending`), and a
    version dot could not draw is not tried again for `FAILURE_CACHE_SECONDS`
    (`DiagramUnavailable`), so a page view costs at most one bounded dot run."""
    key = f"flows:layout:{LAYOUT_VERSION}:{flow_pk}"
    found = cache.get(key)
    if isinstance(found, Layout):
        return found
    if isinstance(found, str):
        raise DiagramUnavailable(found)
    lock = f"{key}:drawing"
    if not cache.add(lock, 1, timeout=DOT_TIMEOUT_SECONDS + 5):
        raise DiagramPending("being drawn")
    try:
        layout = compute_layout(definition)
    except DiagramUnavailable as exc:
        cache.set(key, str(exc) or "failed", timeout=FAILURE_CACHE_SECONDS)
        raise
    finally:
        cache.delete(lock)
    cache.set(key, layout, timeout=LAYOUT_CACHE_SECONDS)
    return layout
