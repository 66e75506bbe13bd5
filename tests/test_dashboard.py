"""The dashboard (the admin's first page) and the stats API: the same numbers under the same
names, counted by hand on a small scenario, never another tenant's, for every role, and in a
fixed number of queries whatever the history holds."""

import re
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import Handoff, Message, MessageStatus
from flows.models import Flow, FlowEvent, FlowSession, SessionStatus
from tenants.models import TenantAPIKey
from tests import factories
from tests.api_helpers import key_client
from tests.roles import USER_KINDS, logged_in

# --- the scenario ------------------------------------------------------------------------------
#
# Times are relative to the start of today (UTC), so the counts hold whenever the test runs:
# "today" is today's midnight (never in the future), "yesterday" the day before at noon, "old"
# forty days ago (outside a 7- or 30-day period, inside a 90-day one).
#
# Messages (7 days):   yesterday 2 in, 2 out (1 failed 63016); today 3 in, 3 out (2 failed
#                      network)                                   -> 5 in, 5 out
# Old:                 1 in, 1 out (failed network)               -> 90 days: 6 in, 6 out
# Threads now:         t_waiting_long, t_waiting_short open + needs a human, t_open open,
#                      t_closed closed                            -> open 3, waiting 2
# Handoffs:            h_long   (t_waiting_long)  now - 2 h 14 min 30 s, open, unanswered
#                      h_short  (t_waiting_short) now - 30 min, answered after 600 s, open
#                      h_closed (t_closed)  yesterday, answered after 240 s, ended
#                      h_open   (t_open)    yesterday - 1 h, answered after 1800 s, ended
#                      h_old    (t_open)    old, answered after 5 s, ended
#   7 days: started 4, answered 3, median of (240, 600, 1800) = 600 s = "10 min"
#   90 days: started 5, answered 4, median of (5, 240, 600, 1800) = (240 + 600) / 2 = 420 s
# Flow sessions (7 days):
#   welcome (v1 and v2): completed 2, handed off 1 (status completed), expired 1, failed 1,
#                        interrupted 1, running 1                 -> started 7, rate 2/7
#   support:             handed off 2, running 1                  -> started 3, rate 0
#   an old completed welcome session                              -> only in 90 days
# AI (flow events, 7 days): welcome 3 answered + 1 fallback; faq (no session) 2 answered;
#   node events do not count                                      -> calls 6, fallbacks 1
# Another tenant has some of everything, with numbers that would show (7 handoffs answered
# in 1 s, 9 failed sends, its own welcome flow).


def _midnight(now):
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


def _messages(thread, when, inbound=0, outbound=0, failed=()):
    rows = [
        Message(
            tenant_id=thread.tenant_id,
            thread=thread,
            channel_id=thread.channel_id,
            direction="inbound",
            status=MessageStatus.RECEIVED,
            sender="contact",
            created_at=when,
        )
        for _ in range(inbound)
    ]
    rows += [
        Message(
            tenant_id=thread.tenant_id,
            thread=thread,
            channel_id=thread.channel_id,
            direction="outbound",
            status=MessageStatus.SENT,
            sender="flow",
            created_at=when,
        )
        for _ in range(outbound)
    ]
    rows += [
        Message(
            tenant_id=thread.tenant_id,
            thread=thread,
            channel_id=thread.channel_id,
            direction="outbound",
            status=MessageStatus.FAILED,
            error_code=code,
            sender="agent",
            created_at=when,
        )
        for code in failed
    ]
    Message.objects.bulk_create(rows)


def _sessions(tenant, thread, flow, when, statuses):
    FlowSession.objects.bulk_create(
        FlowSession(
            tenant=tenant,
            thread=thread,
            flow=flow,
            status=status,
            handed_off=handed_off,
            created_at=when,
            variables={},
        )
        for status, handed_off in statuses
    )


def _events(tenant, flow, when, kinds):
    FlowEvent.objects.bulk_create(
        FlowEvent(
            tenant=tenant,
            flow=flow,
            session_id=uuid.uuid4(),
            kind=kind,
            node_id="ask_ai",
            created_at=when,
        )
        for kind in kinds
    )


def _handoff(thread, started, reply_after=None, ended=False):
    return Handoff.objects.create(
        tenant_id=thread.tenant_id,
        thread=thread,
        source="flow",
        started_at=started,
        first_reply_at=started + timedelta(seconds=reply_after) if reply_after else None,
        ended_at=started + timedelta(hours=1) if ended else None,
    )


def build_scenario(tenant, other_tenant):
    now = timezone.now()
    today = _midnight(now)
    yesterday = today - timedelta(hours=12)
    old = today - timedelta(days=40)
    channel = factories.TwilioChannelFactory(tenant=tenant)
    t_waiting_long = factories.ThreadFactory(channel=channel, needs_human=True)
    t_waiting_short = factories.ThreadFactory(channel=channel, needs_human=True)
    t_open = factories.ThreadFactory(channel=channel)
    t_closed = factories.ThreadFactory(channel=channel, status="closed")

    _messages(t_open, yesterday, inbound=2, outbound=1, failed=["63016"])
    _messages(t_waiting_short, today, inbound=3, outbound=1, failed=["network", "network"])
    _messages(t_closed, old, inbound=1, failed=["network"])

    _handoff(t_waiting_long, now - timedelta(hours=2, minutes=14, seconds=30))
    _handoff(t_waiting_short, now - timedelta(minutes=30), reply_after=600)
    _handoff(t_closed, yesterday, reply_after=240, ended=True)
    _handoff(t_open, yesterday - timedelta(hours=1), reply_after=1800, ended=True)
    _handoff(t_open, old, reply_after=5, ended=True)

    def flow(flow_id, version, name):
        return Flow.objects.create(
            tenant=tenant,
            channel=channel,
            flow_id=flow_id,
            version=version,
            name=name,
            definition={},
        )

    welcome_v1, welcome_v2 = flow("welcome", 1, "Welcome"), flow("welcome", 2, "Welcome")
    support, faq = flow("support", 1, "Support"), flow("faq", 1, "FAQ")
    _sessions(
        tenant,
        t_open,
        welcome_v1,
        yesterday,
        [
            (SessionStatus.COMPLETED, False),
            (SessionStatus.COMPLETED, True),  # a handoff: never "completed"
            (SessionStatus.EXPIRED, False),
        ],
    )
    _sessions(
        tenant,
        t_closed,
        welcome_v2,
        today,
        [
            (SessionStatus.COMPLETED, False),
            (SessionStatus.FAILED, False),
            (SessionStatus.INTERRUPTED, False),
        ],
    )
    _sessions(tenant, t_waiting_long, welcome_v2, today, [(SessionStatus.WAITING, False)])
    _sessions(tenant, t_closed, welcome_v1, old, [(SessionStatus.COMPLETED, False)])
    _sessions(
        tenant,
        t_waiting_short,
        support,
        today,
        [(SessionStatus.COMPLETED, True), (SessionStatus.COMPLETED, True)],
    )
    _sessions(tenant, t_open, support, today, [(SessionStatus.WAITING, False)])
    _events(tenant, welcome_v1, yesterday, ["ai_answered", "ai_answered", "ai_fallback"])
    _events(tenant, welcome_v2, today, ["ai_answered", "entered", "exited", "completed"])
    _events(tenant, faq, today, ["ai_answered", "ai_answered"])

    # another tenant: numbers that must never show here
    foreign_channel = factories.TwilioChannelFactory(tenant=other_tenant)
    foreign = factories.ThreadFactory(channel=foreign_channel, needs_human=True)
    _messages(foreign, today, inbound=11, outbound=13, failed=["131047"] * 9)
    for _ in range(7):
        _handoff(foreign, today, reply_after=1, ended=True)
    _handoff(foreign, now - timedelta(days=3))
    foreign_flow = Flow.objects.create(
        tenant=other_tenant,
        channel=foreign_channel,
        flow_id="welcome",
        version=1,
        name="Their welcome",
        definition={},
    )
    _sessions(other_tenant, foreign, foreign_flow, today, [(SessionStatus.COMPLETED, False)] * 4)
    _events(other_tenant, foreign_flow, today, ["ai_fallback"] * 5)
    return now


EXPECTED_FLOWS_7 = [
    {
        "flow_id": "faq",
        "name": "FAQ",
        "started": 0,
        "completed": 0,
        "handed_off": 0,
        "expired": 0,
        "failed": 0,
        "interrupted": 0,
        "running": 0,
        "completion_rate": None,
        "ai_calls": 2,
        "ai_fallbacks": 0,
    },
    {
        "flow_id": "support",
        "name": "Support",
        "started": 3,
        "completed": 0,
        "handed_off": 2,
        "expired": 0,
        "failed": 0,
        "interrupted": 0,
        "running": 1,
        "completion_rate": 0.0,
        "ai_calls": 0,
        "ai_fallbacks": 0,
    },
    {
        "flow_id": "welcome",
        "name": "Welcome",
        "started": 7,
        "completed": 2,
        "handed_off": 1,
        "expired": 1,
        "failed": 1,
        "interrupted": 1,
        "running": 1,
        "completion_rate": 0.2857,
        "ai_calls": 4,
        "ai_fallbacks": 1,
    },
]


# --- the API -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_stats_api_reports_the_hand_counted_numbers(tenant, other_tenant):
    # given
    now = build_scenario(tenant, other_tenant)
    url = reverse("stats", kwargs={"tenant": tenant.pk})

    # when
    body = key_client(tenant).get(url, {"days": 7}).json()

    # then
    assert body["days"] == 7
    assert sum(day["inbound"] for day in body["messages"]) == 5
    assert body["message_totals"] == {"inbound": 5, "outbound": 5}
    today = now.astimezone(UTC).date()
    by_date = {day["date"]: (day["inbound"], day["outbound"]) for day in body["messages"]}
    assert by_date[today.isoformat()] == (3, 3)
    assert by_date[(today - timedelta(days=1)).isoformat()] == (2, 2)
    assert sum(1 for counts in by_date.values() if counts != (0, 0)) == 2
    threads = body["threads"]
    assert (threads["open"], threads["needs_human"]) == (3, 2)
    oldest = datetime.fromisoformat(threads["oldest_waiting_since"])
    assert oldest == now - timedelta(hours=2, minutes=14, seconds=30)
    assert body["flows"] == EXPECTED_FLOWS_7
    assert body["ai"] == {"calls": 6, "answered": 5, "fallbacks": 1}
    assert body["handoffs"] == {"started": 4, "answered": 3, "median_first_reply_seconds": 600}
    assert body["failed_sends"] == [
        {"code": "network", "reason": "The provider could not be reached.", "count": 2},
        {
            "code": "63016",
            "reason": "WhatsApp refused a free-form message: more than 24 hours passed since "
            "the contact last wrote.",
            "count": 1,
        },
    ]


@pytest.mark.django_db
def test_over_ninety_days_the_old_activity_counts_and_the_median_is_of_the_middle_two(
    tenant, other_tenant
):
    build_scenario(tenant, other_tenant)
    body = key_client(tenant).get(reverse("stats", kwargs={"tenant": tenant.pk}), {"days": 90})
    body = body.json()
    assert body["message_totals"] == {"inbound": 6, "outbound": 6}
    assert body["handoffs"] == {"started": 5, "answered": 4, "median_first_reply_seconds": 420}
    assert [(row["code"], row["count"]) for row in body["failed_sends"]] == [
        ("network", 3),
        ("63016", 1),
    ]
    welcome = next(flow for flow in body["flows"] if flow["flow_id"] == "welcome")
    assert (welcome["started"], welcome["completed"], welcome["completion_rate"]) == (8, 3, 0.375)


@pytest.mark.django_db
def test_a_new_tenant_gets_zeros_and_nulls(tenant):
    body = key_client(tenant).get(reverse("stats", kwargs={"tenant": tenant.pk})).json()
    assert body["message_totals"] == {"inbound": 0, "outbound": 0}
    assert body["threads"] == {"open": 0, "needs_human": 0, "oldest_waiting_since": None}
    assert body["flows"] == [] and body["failed_sends"] == []
    assert body["ai"] == {"calls": 0, "answered": 0, "fallbacks": 0}
    assert body["handoffs"] == {"started": 0, "answered": 0, "median_first_reply_seconds": None}


# --- the page ----------------------------------------------------------------------------------


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</p>', html, re.S)
    assert match, element_id
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def _flow_cells(html: str, flow_id: str) -> dict[str, str]:
    row = re.search(rf'<tr data-flow="{flow_id}">(.*?)</tr>', html, re.S)
    assert row, flow_id
    return dict(re.findall(r'data-key="([a-z_]+)">([^<]*)<', row.group(1)))


def _failed_rows(html: str) -> list[tuple[str, str]]:
    table = re.search(r'<table class="dash-table" id="failed-sends">(.*?)</table>', html, re.S)
    assert table
    return re.findall(r"<code>([^<]*)</code></td><td class=\"num\">(\d+)<", table.group(1))


@pytest.mark.django_db
def test_the_dashboard_shows_the_hand_counted_numbers(tenant, other_tenant, member):
    # given
    build_scenario(tenant, other_tenant)
    client = Client()
    client.force_login(member(tenant, "viewer"))

    # when
    response = client.get(reverse("admin:index"), {"days": 7})

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert _text(html, "kpi-waiting") == "2 waiting · oldest 2 h 14 min"
    assert 'href="/admin/inbox/?needs_human=1"' in html
    assert _text(html, "kpi-messages") == "5 in · 5 out"
    assert _text(html, "kpi-median") == "10 min"
    assert "median over 3 answered of 4 handoffs" in html
    assert _text(html, "kpi-failed") == "3"
    assert _text(html, "kpi-ai") == "6 calls"
    assert _text(html, "kpi-ai-note") == "1 fallback · 5 answered"
    assert _flow_cells(html, "welcome") == {
        "started": "7",
        "completed": "2",
        "handed_off": "1",
        "expired": "1",
        "failed": "1",
        "interrupted": "1",
        "running": "1",
        "completion_rate": "29%",
        "ai_calls": "4",
        "ai_fallbacks": "1",
    }
    assert _flow_cells(html, "support")["handed_off"] == "2"
    assert _flow_cells(html, "support")["completed"] == "0"
    assert _flow_cells(html, "faq")["completion_rate"] == "—"
    assert _failed_rows(html) == [("network", "2"), ("63016", "1")]
    # the chart: seven days, each with its tooltip, today's numbers in its own
    assert html.count('<g class="chart-day">') == 7
    today = timezone.now().astimezone(UTC)
    assert f"<title>{today.day} {today:%b} {today.year}: 3 in · 3 out</title>" in html
    # and the page and the API agree (the same computation)
    assert response.context["stats"]["flows"][2]["completion_rate"] == 0.2857


@pytest.mark.django_db
def test_another_tenants_numbers_never_show(tenant, other_tenant, member):
    build_scenario(tenant, other_tenant)
    client = Client()
    client.force_login(member(tenant, "owner"))
    html = client.get(reverse("admin:index"), {"days": 7}).content.decode()
    assert "Their welcome" not in html and "131047" not in html
    assert _text(html, "kpi-ai") == "6 calls"
    # their dashboard is a 404 for this member, like a tenant that does not exist
    response = client.get(reverse("admin:index"), {"tenant": str(other_tenant.pk)})
    assert response.status_code == 404
    assert client.get(reverse("admin:index"), {"tenant": str(uuid.uuid4())}).status_code == 404
    assert client.get(reverse("admin:index"), {"tenant": "nope"}).status_code == 404
    # and the API answers 404 for the other tenant's stats with this tenant's key
    other_url = reverse("stats", kwargs={"tenant": other_tenant.pk})
    assert key_client(tenant).get(other_url).status_code == 404


@pytest.mark.django_db
def test_a_member_of_two_tenants_picks_one_the_first_by_default(tenant, other_tenant, member):
    # given: the member's tenants are named so that `other_tenant` comes first
    tenant.name, other_tenant.name = "Zebra Gym", "Alpha Yoga"
    tenant.save(update_fields=["name"])
    other_tenant.save(update_fields=["name"])
    build_scenario(tenant, other_tenant)
    user = member(tenant, "agent")
    factories.MembershipFactory(tenant=other_tenant, user=user, role="viewer")
    client = Client()
    client.force_login(user)

    # when / then: Alpha Yoga first, Zebra Gym when picked
    first = client.get(reverse("admin:index"), {"days": 7})
    assert first.context["tenant"] == other_tenant
    assert _text(first.content.decode(), "kpi-failed") == "9"
    picked = client.get(reverse("admin:index"), {"days": 7, "tenant": str(tenant.pk)})
    assert picked.context["tenant"] == tenant
    assert _text(picked.content.decode(), "kpi-failed") == "3"
    assert "All tenants" not in picked.content.decode()


@pytest.mark.django_db
def test_platform_staff_see_every_tenant_or_one(admin_client, tenant, other_tenant):
    build_scenario(tenant, other_tenant)
    everyone = admin_client.get(reverse("admin:index"), {"days": 7})
    html = everyone.content.decode()
    assert everyone.context["platform_wide"] is True
    assert _text(html, "kpi-failed") == "12"
    assert _text(html, "kpi-waiting").startswith("3 waiting · oldest 3 d")
    assert "Their welcome" in html
    assert f'<span class="flow-tenant">{other_tenant.name}</span>' in html
    one = admin_client.get(reverse("admin:index"), {"days": 7, "tenant": str(tenant.pk)})
    assert _text(one.content.decode(), "kpi-failed") == "3"
    assert "Their welcome" not in one.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["0", "366", "abc", "-1", "7.5", "٣"])
def test_a_bad_period_is_a_400_that_says_so(admin_client, days):
    response = admin_client.get(reverse("admin:index"), {"days": days})
    assert response.status_code == 400
    assert "days must be a whole number from 1 to 365" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("days", [1, 7, 30, 90, 365])
def test_every_period_draws_every_day(admin_client, tenant, other_tenant, days):
    build_scenario(tenant, other_tenant)
    html = admin_client.get(reverse("admin:index"), {"days": days}).content.decode()
    assert html.count('<g class="chart-day">') == days
    assert html.count("<title>") >= days
    assert 'style="' not in html.split('id="content-main"')[1]


@pytest.mark.django_db
def test_a_new_tenant_is_told_what_to_do(tenant, member):
    client = Client()
    client.force_login(member(tenant, "owner"))
    html = client.get(reverse("admin:index")).content.decode()
    assert "No messages in this period." in html
    assert "Connect a number under" in html
    assert "No flow ran in this period." in html and "Upload a flow" in html
    assert _text(html, "kpi-waiting") == "0 waiting" and "Nobody is waiting now." in html
    assert "No send failed in this period." in html


@pytest.mark.django_db
@pytest.mark.parametrize("kind", USER_KINDS)
def test_every_role_sees_its_tenants_dashboard(
    kind, tenant, other_tenant, django_user_model, member
):
    build_scenario(tenant, other_tenant)
    client = logged_in(Client(), kind, tenant, django_user_model, member)
    response = client.get(reverse("admin:index"), {"days": 7, "tenant": str(tenant.pk)})
    assert response.status_code == 200
    assert _text(response.content.decode(), "kpi-messages") == "5 in · 5 out"


# --- bounded queries ---------------------------------------------------------------------------


def _big_history(tenant):
    """10,000 flow sessions, 100,000 messages, 2,000 handoffs and 10,000 flow events."""
    now = timezone.now()
    channel = factories.TwilioChannelFactory(tenant=tenant)
    threads = [factories.ThreadFactory(channel=channel) for _ in range(20)]
    flows = [
        Flow.objects.create(
            tenant=tenant, channel=channel, flow_id=f"f{i}", version=1, name=f"F{i}", definition={}
        )
        for i in range(5)
    ]
    statuses = ["completed", "expired", "failed", "interrupted", "completed"]
    batch = 5000
    rows = []
    for i in range(100_000):
        thread = threads[i % 20]
        rows.append(
            Message(
                tenant_id=tenant.pk,
                thread_id=thread.pk,
                channel_id=channel.pk,
                direction="inbound" if i % 2 else "outbound",
                status="received" if i % 2 else ("failed" if i % 10 == 0 else "sent"),
                error_code="network" if i % 10 == 0 else "",
                sender="contact" if i % 2 else "flow",
                created_at=now - timedelta(minutes=i % (60 * 24 * 80)),
            )
        )
        if len(rows) == batch:
            Message.objects.bulk_create(rows)
            rows = []
    FlowSession.objects.bulk_create(
        (
            FlowSession(
                tenant_id=tenant.pk,
                thread_id=threads[i % 20].pk,
                flow=flows[i % 5],
                status=statuses[i % 5],
                handed_off=i % 7 == 0,
                variables={},
                created_at=now - timedelta(minutes=i),
            )
            for i in range(10_000)
        ),
        batch_size=2000,
    )
    Handoff.objects.bulk_create(
        (
            Handoff(
                tenant_id=tenant.pk,
                thread_id=threads[i % 20].pk,
                source="flow",
                started_at=now - timedelta(minutes=i + 10),
                first_reply_at=now - timedelta(minutes=i),
                ended_at=now - timedelta(minutes=i),
            )
            for i in range(2000)
        ),
        batch_size=2000,
    )
    FlowEvent.objects.bulk_create(
        (
            FlowEvent(
                tenant_id=tenant.pk,
                flow=flows[i % 5],
                session_id=uuid.uuid4(),
                kind="ai_answered" if i % 3 else "ai_fallback",
                node_id="ai",
                created_at=now - timedelta(minutes=i),
            )
            for i in range(10_000)
        ),
        batch_size=2000,
    )


@pytest.mark.django_db
def test_page_and_api_cost_the_same_queries_with_a_long_history(
    tenant, other_tenant, member, django_assert_max_num_queries
):
    # given: a handful of everything, and the cost of the page and the API over it
    build_scenario(tenant, other_tenant)
    user = member(tenant, "owner")
    client = Client()
    client.force_login(user)
    api = key_client(tenant)
    page_url, api_url = reverse("admin:index"), reverse("stats", kwargs={"tenant": tenant.pk})
    client.get(page_url, {"days": 90})  # warm the per-process caches
    api.get(api_url, {"days": 90})
    with django_assert_max_num_queries(30) as page_small:
        assert client.get(page_url, {"days": 90}).status_code == 200
    with django_assert_max_num_queries(12) as api_small:
        assert api.get(api_url, {"days": 90}).status_code == 200

    # when: the tenant's history grows to 10,000 sessions and 100,000 messages
    _big_history(tenant)
    assert Message.objects.filter(tenant=tenant).count() > 100_000
    assert FlowSession.objects.filter(tenant=tenant).count() > 10_000
    # the key's last use is written at most once a minute: building the history may take
    # longer, and that write is not what this test measures
    TenantAPIKey.objects.filter(tenant=tenant).update(last_used_at=timezone.now())

    # then: the same number of queries, and the numbers moved
    with django_assert_max_num_queries(len(page_small.captured_queries)):
        page = client.get(page_url, {"days": 90})
    assert page.status_code == 200
    with django_assert_max_num_queries(len(api_small.captured_queries)):
        body = api.get(api_url, {"days": 90}).json()
    assert sum(flow["started"] for flow in body["flows"]) == 10 + 1 + 10_000
    assert body["message_totals"]["inbound"] == 6 + 50_000
    assert body["handoffs"]["median_first_reply_seconds"] == 600
