"""The flow diagram: the layout dot gives us, the counts recorded per version (checked against
a scenario counted by hand), the admin page that draws them, and its bounded query count."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from conversations.services.process import flow_expire_stale_sessions, flow_fire_due_timeouts
from flows import selectors
from flows.diagram import DiagramUnavailable, Layout, compute_layout, flow_layout
from flows.engine import parse_flow
from flows.engine.graph import node_exits
from flows.models import FlowEvent, FlowEventKind, FlowSession, SessionStatus
from flows.services import flow_create
from flows.tests.support import example, private_cache, receive  # noqa: F401 - fixture
from tests import factories

pytestmark = pytest.mark.django_db

# A flow whose every count can be worked out by hand: one question with a timeout and an
# invalid-reply way out, an email input, a handoff and two ends.
COUNTED = {
    "schema_version": 1,
    "flow_id": "counted",
    "name": "Counted",
    "trigger": {"default": True},
    "start": "ask",
    "nodes": [
        {
            "id": "ask",
            "type": "question",
            "text": "Yes or no?",
            "choices": [
                {"id": "yes", "label": "Yes", "next": "confirm"},
                {"id": "no", "label": "No", "next": "human"},
            ],
            "max_retries": 1,
            "on_invalid": "human",
            "timeout": {"seconds": 60, "next": "bye"},
        },
        {
            "id": "confirm",
            "type": "input",
            "text": "Your email?",
            "save_as": "email",
            "validate": "email",
            "next": "done",
        },
        {"id": "done", "type": "end", "text": "Booked."},
        {"id": "human", "type": "handoff", "text": "A person will answer.", "reason": "asked"},
        {"id": "bye", "type": "end", "text": "Bye."},
    ],
}


def _boxes_overlap(layout: Layout) -> list[tuple[str, str]]:
    boxes = layout.nodes
    return [
        (a.id, b.id)
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a.x < b.x + b.width
        and b.x < a.x + a.width
        and a.y < b.y + b.height
        and b.y < a.y + a.height
    ]


# --- layout ---------------------------------------------------------------------------------


def test_every_node_is_a_box_and_every_exit_an_arrow():
    definition = parse_flow(example("clinica-agendamento"))

    layout = compute_layout(definition)

    assert {node.id for node in layout.nodes} == {node.id for node in definition.nodes}
    expected = {(node.id, exit.key) for node in definition.nodes for exit in node_exits(node)}
    assert {(edge.source, edge.key) for edge in layout.edges} == expected
    assert _boxes_overlap(layout) == []
    for node in layout.nodes:
        assert 0 <= node.x and node.x + node.width <= layout.width
        assert 0 <= node.y and node.y + node.height <= layout.height
    start = next(node for node in layout.nodes if node.is_start)
    assert start.id == "boas_vindas"
    assert all(edge.path.startswith("M") and " C" in edge.path for edge in layout.edges)
    faixa = {edge.key: edge for edge in layout.edges if edge.source == "faixa"}
    assert faixa["case:1"].label == "especialidade is pediatria and idade ≥ 18"


def test_a_flow_of_a_hundred_nodes_is_laid_out_without_overlaps():
    # given a generated flow: a chain of questions, each with ways forward and back
    rng = random.Random(12)
    nodes = []
    for index in range(99):
        forward = f"n{index + 1}"
        other = f"n{rng.randrange(index + 1, 100)}"
        nodes.append(
            {
                "id": f"n{index}",
                "type": "question",
                "text": f"Question number {index}: which way shall we go from here?",
                "choices": [
                    {"id": "on", "label": "Onwards", "next": forward},
                    {"id": "jump", "label": "Jump", "next": other},
                    {"id": "back", "label": "Back", "next": f"n{rng.randrange(0, index + 1)}"},
                ],
            }
        )
    nodes.append({"id": "n99", "type": "end", "text": "The end."})
    definition = parse_flow(
        {"schema_version": 1, "flow_id": "big", "name": "Big", "start": "n0", "nodes": nodes}
    )

    # when
    layout = compute_layout(definition)

    # then
    assert len(layout.nodes) == 100 and len(layout.edges) == 99 * 3
    assert _boxes_overlap(layout) == []
    assert all(node.lines[0] for node in layout.nodes)


def test_the_layout_of_a_version_is_computed_once(tenant, twilio_channel, monkeypatch):
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=COUNTED)
    definition = parse_flow(COUNTED)
    first = flow_layout(flow_pk=flow.pk, definition=definition)
    monkeypatch.setattr("flows.diagram._run_dot", lambda source: pytest.fail("dot ran again"))

    assert flow_layout(flow_pk=flow.pk, definition=definition) == first


# --- counts ---------------------------------------------------------------------------------


def _run_scenario(tenant, channel):
    """Six contacts through COUNTED (see the expected numbers in the test)."""
    flow = flow_create(tenant=tenant, channel=channel, definition=COUNTED)
    threads = [factories.ThreadFactory(channel=channel) for _ in range(6)]
    t1, t2, t3, t4, t5, t6 = threads
    for thread, replies in [
        (t1, ["hi", "yes", "ana@example.com"]),  # ask -yes-> confirm -next-> done
        (t2, ["hi", "no"]),  # ask -no-> human (handoff)
        (t3, ["hi"]),  # waits at ask, then times out to bye
        (t5, ["hi", "yes"]),  # waits at confirm, then its session expires there
        (t6, ["hi", "maybe", "dunno"]),  # a retry, then -invalid-> human (handoff)
    ]:
        for text in replies:
            receive(thread, text)
    now = timezone.now()
    FlowSession.objects.filter(thread=t3).update(wait_expires_at=now - timedelta(seconds=1))
    assert flow_fire_due_timeouts(now=now, expire_stale=False) == 1
    FlowSession.objects.filter(thread=t5).update(
        waiting_since=now - timedelta(days=2), stale_at=now - timedelta(days=1)
    )
    assert flow_expire_stale_sessions(now=now) == 1
    for text in ["hi", "yes"]:  # ask -yes-> confirm, where it is still waiting
        receive(t4, text)
    return flow


def test_counts_match_a_scenario_counted_by_hand(tenant, twilio_channel, other_tenant):
    # given six contacts, and another tenant's flow with the same node ids and its own traffic
    flow = _run_scenario(tenant, twilio_channel)
    _run_scenario(other_tenant, factories.TwilioChannelFactory(tenant=other_tenant))
    now = timezone.now()

    # when
    counts = selectors.flow_path_counts(flow_pk=flow.pk, since=now - timedelta(days=1), until=now)

    # then, node by node
    ask, confirm = counts.node("ask"), counts.node("confirm")
    assert (ask.entered, ask.waiting, ask.timed_out, ask.handed_off, ask.expired) == (6, 0, 1, 0, 0)
    assert (confirm.entered, confirm.waiting, confirm.expired, confirm.completed) == (3, 1, 1, 0)
    assert (counts.node("done").entered, counts.node("done").completed) == (1, 1)
    assert (counts.node("human").entered, counts.node("human").handed_off) == (2, 2)
    assert (counts.node("bye").entered, counts.node("bye").completed) == (1, 1)
    # and exit by exit
    assert counts.exits == {
        ("ask", "choice:yes"): 3,  # t1, t4, t5
        ("ask", "choice:no"): 1,  # t2
        ("ask", "timeout"): 1,  # t3
        ("ask", "invalid"): 1,  # t6, after one retry
        ("confirm", "next"): 1,  # t1
    }


def test_the_period_bounds_the_counts_but_not_who_waits_now(tenant, twilio_channel):
    flow = _run_scenario(tenant, twilio_channel)
    old = FlowEvent.objects.create(
        tenant=tenant,
        flow=flow,
        session_id=uuid.uuid4(),
        kind=FlowEventKind.ENTERED,
        node_id="ask",
        created_at=timezone.now() - timedelta(days=10),
    )
    now = timezone.now()

    week = selectors.flow_path_counts(flow_pk=flow.pk, since=now - timedelta(days=7), until=now)
    month = selectors.flow_path_counts(flow_pk=flow.pk, since=now - timedelta(days=30), until=now)
    before = selectors.flow_path_counts(
        flow_pk=flow.pk, since=now - timedelta(days=30), until=old.created_at
    )

    assert (week.node("ask").entered, month.node("ask").entered) == (6, 7)
    assert before.node("ask").entered == 0
    assert (
        week.node("confirm").waiting
        == month.node("confirm").waiting
        == before.node("confirm").waiting
        == 1
    )


def test_a_new_version_counts_apart(tenant, twilio_channel):
    first = _run_scenario(tenant, twilio_channel)
    second = flow_create(tenant=tenant, channel=twilio_channel, definition=COUNTED)
    receive(factories.ThreadFactory(channel=twilio_channel), "hi")
    now = timezone.now()

    old = selectors.flow_path_counts(flow_pk=first.pk, since=now - timedelta(days=1), until=now)
    new = selectors.flow_path_counts(flow_pk=second.pk, since=now - timedelta(days=1), until=now)

    assert (old.node("ask").entered, new.node("ask").entered, new.node("ask").waiting) == (6, 1, 1)


# --- the page -------------------------------------------------------------------------------


class _Table(HTMLParser):
    """The rows of the page's counts table: node id -> the six numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "tr" and "data-node" in attributes:
            self._row = attributes["data-node"]
            self.rows[self._row] = []
        elif tag == "td" and self._row and attributes.get("class") == "num":
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._row:
            self.rows[self._row].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None


def _table(response) -> dict[str, list[int]]:
    parser = _Table()
    parser.feed(response.content.decode())
    return {node: [int(value) for value in values] for node, values in parser.rows.items()}


def test_the_page_draws_the_version_with_its_counts(client, tenant, twilio_channel, member):
    flow = _run_scenario(tenant, twilio_channel)
    client.force_login(member(tenant, "viewer"))

    response = client.get(reverse("admin:flows_flow_change", args=[flow.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('class="node node--') == 5
    assert 'class="node node--question node--start"' in body
    assert "no reply in 1 min" in body
    # entered, waiting now, timed out, handed off, dropped out, completed here, interrupted,
    # failed
    assert _table(response) == {
        "ask": [6, 0, 1, 0, 0, 0, 0, 0],
        "confirm": [3, 1, 0, 0, 1, 0, 0, 0],
        "done": [1, 0, 0, 0, 0, 1, 0, 0],
        "human": [2, 0, 0, 2, 0, 0, 0, 0],
        "bye": [1, 0, 0, 0, 0, 1, 0, 0],
    }
    # every box links to its node in the readable view, which answers
    nodes_url = reverse("admin:flows_flow_nodes", args=[flow.pk])
    assert f'href="{nodes_url}#node-confirm"' in body
    assert client.get(nodes_url).status_code == 200
    assert " style=" not in body.split('id="flow-diagram"')[1].split("</section>")[0]


def test_a_bad_period_shows_the_default_and_says_so(client, tenant, twilio_channel, member):
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=COUNTED)
    client.force_login(member(tenant, "viewer"))

    response = client.get(reverse("admin:flows_flow_change", args=[flow.pk]), {"days": "9999"})

    assert response.status_code == 200
    assert response.context["period_days"] == 30
    assert "Choose one of the listed periods" in response.content.decode()


def test_another_tenants_version_is_a_404(client, tenant, other_tenant, twilio_channel, member):
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=COUNTED)
    client.force_login(member(other_tenant, "owner"))

    response = client.get(reverse("admin:flows_flow_change", args=[flow.pk]))

    assert response.status_code == 404


def test_without_dot_the_page_still_answers_with_the_table(
    client, tenant, twilio_channel, member, monkeypatch
):
    flow = _run_scenario(tenant, twilio_channel)
    monkeypatch.setattr("flows.diagram._dot_program", lambda: "/nonexistent/graphviz-pure")
    client.force_login(member(tenant, "viewer"))

    response = client.get(reverse("admin:flows_flow_change", args=[flow.pk]))

    assert response.status_code == 200
    assert "This version could not be drawn" in response.content.decode()
    assert _table(response)["ask"][:3] == [6, 0, 1]


def test_a_failed_drawing_is_not_tried_again_at_once(
    client, tenant, twilio_channel, member, monkeypatch
):
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=COUNTED)
    runs = []

    def failing(source):
        runs.append(source)
        raise DiagramUnavailable("TimeoutExpired")

    monkeypatch.setattr("flows.diagram._run_dot", failing)
    client.force_login(member(tenant, "viewer"))
    url = reverse("admin:flows_flow_change", args=[flow.pk])

    first, second = client.get(url), client.get(url)

    assert first.status_code == second.status_code == 200
    assert len(runs) == 1


def test_unexpected_dot_output_is_a_failure_not_a_500(
    client, tenant, twilio_channel, member, monkeypatch
):
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=COUNTED)
    monkeypatch.setattr(
        "flows.diagram._run_dot", lambda source: {"bb": "0,0,10,10", "objects": [{}]}
    )
    client.force_login(member(tenant, "viewer"))

    response = client.get(reverse("admin:flows_flow_change", args=[flow.pk]))

    assert response.status_code == 200
    assert "This version could not be drawn" in response.content.decode()


def test_while_another_request_draws_the_page_says_so(
    client, tenant, twilio_channel, member, monkeypatch
):
    from django.core.cache import cache

    from flows.diagram import LAYOUT_VERSION

    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=COUNTED)
    cache.add(f"flows:layout:{LAYOUT_VERSION}:{flow.pk}:drawing", 1, timeout=30)
    monkeypatch.setattr("flows.diagram._run_dot", lambda source: pytest.fail("dot ran twice"))
    client.force_login(member(tenant, "viewer"))

    response = client.get(reverse("admin:flows_flow_change", args=[flow.pk]))

    assert "being drawn by another request" in response.content.decode()


def test_a_large_dense_flow_is_drawn_within_the_request_budget():
    """100 questions with five choices, an invalid-reply way and a timeout each (700 arrows):
    the fast mode (straight arrows, labels placed after the layout) keeps dot well inside
    its timeout; curved routing with label nodes took over 20 s for this flow."""
    rng = random.Random(3)
    nodes = []
    for index in range(99):
        choices = [
            {"id": f"c{j}", "label": f"Choice {j}", "next": f"n{rng.randrange(index + 1, 100)}"}
            for j in range(5)
        ]
        choices[0]["next"] = f"n{index + 1}"
        nodes.append(
            {
                "id": f"n{index}",
                "type": "question",
                "text": f"Question {index}?",
                "choices": choices,
                "on_invalid": f"n{rng.randrange(0, 100)}",
                "timeout": {"seconds": 3600, "next": f"n{rng.randrange(0, 100)}"},
            }
        )
    nodes.append({"id": "n99", "type": "end"})
    definition = parse_flow(
        {"schema_version": 1, "flow_id": "dense", "name": "Dense", "start": "n0", "nodes": nodes}
    )

    layout = compute_layout(definition)  # raises DiagramUnavailable past DOT_TIMEOUT_SECONDS

    assert len(layout.nodes) == 100 and len(layout.edges) == 99 * 7
    assert _boxes_overlap(layout) == []


def _history(tenant, flow, thread, sessions: int) -> None:
    """`sessions` finished sessions of `flow`, five events each, in bulk."""
    now = timezone.now()
    rows, events = [], []
    for index in range(sessions):
        session = FlowSession(
            tenant=tenant,
            thread=thread,
            flow=flow,
            status=SessionStatus.COMPLETED,
            current_node="done",
            created_at=now - timedelta(minutes=index % 5000),
        )
        rows.append(session)
        for kind, node, exit in [
            (FlowEventKind.ENTERED, "ask", ""),
            (FlowEventKind.EXITED, "ask", "choice:yes"),
            (FlowEventKind.ENTERED, "confirm", ""),
            (FlowEventKind.EXITED, "confirm", "next"),
            (FlowEventKind.COMPLETED, "done", ""),
        ]:
            events.append(
                FlowEvent(
                    tenant=tenant,
                    flow=flow,
                    session_id=session.pk,
                    kind=kind,
                    node_id=node,
                    exit=exit,
                    created_at=session.created_at,
                )
            )
    FlowSession.objects.bulk_create(rows, batch_size=2000)
    FlowEvent.objects.bulk_create(events, batch_size=5000)


def test_the_page_answers_in_the_same_queries_for_ten_thousand_sessions(
    client,
    tenant,
    twilio_channel,
    member,
    private_cache,  # noqa: F811
):
    # given a version with a handful of sessions, measured
    flow = flow_create(tenant=tenant, channel=twilio_channel, definition=COUNTED)
    thread = factories.ThreadFactory(channel=twilio_channel)
    client.force_login(member(tenant, "viewer"))
    url = reverse("admin:flows_flow_change", args=[flow.pk])
    _history(tenant, flow, thread, 3)
    client.get(url)  # warm the layout cache and the session
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200

    # when the history grows to 10,000 sessions
    _history(tenant, flow, thread, 9_997)
    with CaptureQueriesContext(connection) as large:
        response = client.get(url)

    # then the same number of queries, and the numbers are right
    assert len(large) == len(small)
    assert _table(response)["ask"][0] == 10_000
    assert _table(response)["done"][5] == 10_000
