"""The embedded scheduler (core/scheduler.py): when it starts, how a tick runs, and that a due
flow timeout fires through it."""

import logging
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from core import scheduler
from core.scheduler import Job, Scheduler, jobs_from_beat, should_start


def _should(argv, environ=None, *, broker_url="", enabled=True):
    return should_start(argv=argv, environ=environ or {}, broker_url=broker_url, enabled=enabled)


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["manage.py", "runserver", "127.0.0.1:8000"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver", "--noreload"], {}, True),
        # the autoreloader's parent only watches files: its child serves (and schedules)
        (["manage.py", "runserver", "127.0.0.1:8000"], {}, False),
        (["/srv/.venv/bin/gunicorn", "chatai.wsgi:application"], {}, True),
        (["python", "-m", "gunicorn"], {"SERVER_SOFTWARE": "gunicorn/23.0.0"}, True),
        (["manage.py", "migrate", "--no-input"], {}, False),
        (["manage.py", "seed_demo"], {"RUN_MAIN": "true"}, False),
        (["manage.py", "shell"], {}, False),
        (["manage.py", "simulate_chat", "--channel", "x"], {}, False),
        (["/srv/.venv/bin/pytest", "-q"], {}, False),
        ([], {}, False),
    ],
)
def test_starts_only_in_a_server_process(argv, environ, expected):
    assert _should(argv, environ) is expected


def test_never_starts_with_a_broker_or_when_disabled():
    server = (["manage.py", "runserver", "--noreload"], {})
    assert _should(*server, broker_url="redis://redis:6379/0") is False
    assert _should(*server, enabled=False) is False


def test_the_test_settings_never_start_it(settings):
    assert settings.EMBEDDED_SCHEDULER is False
    started = scheduler.start_if_server(argv=["manage.py", "runserver", "--noreload"], environ={})
    assert started is None


def test_jobs_are_beats_with_the_embedded_intervals(settings):
    jobs = {
        job.name: job
        for job in jobs_from_beat(
            settings.CELERY_BEAT_SCHEDULE, overrides=settings.EMBEDDED_SCHEDULE_SECONDS
        )
    }
    assert jobs["process-pending"].every == 60.0
    assert jobs["process-flow-timeouts"].every == 2.0  # a timeout fires within ~2 s of its due time
    from conversations.tasks import process_pending

    assert jobs["process-pending"].run is process_pending


def test_a_tick_runs_only_due_jobs_and_reschedules_them():
    clock = [100.0]
    ran: list[str] = []
    jobs = [
        Job("fast", every=2.0, run=lambda: ran.append("fast")),
        Job("slow", every=60.0, run=lambda: ran.append("slow")),
    ]
    sched = Scheduler(jobs, tick=1.0, clock=lambda: clock[0])

    assert sched.run_due(now=100.5) == []  # nothing before the first tick
    assert sched.run_due(now=101.0) == ["fast", "slow"]
    assert sched.run_due(now=102.5) == []
    assert sched.run_due(now=103.0) == ["fast"]
    assert sched.run_due(now=161.0) == ["fast", "slow"]
    assert ran == ["fast", "slow", "fast", "fast", "slow"]


def test_a_failing_job_is_logged_without_its_text_and_the_others_still_run(caplog):
    def boom():
        raise ValueError("+15551234567 said hello")

    ran: list[str] = []
    sched = Scheduler(
        [Job("boom", every=1.0, run=boom), Job("ok", every=1.0, run=lambda: ran.append("ok"))],
        clock=lambda: 0.0,
    )
    with caplog.at_level(logging.ERROR, logger="core.scheduler"):
        assert sched.run_due(now=5.0) == ["boom", "ok"]
        assert sched.run_due(now=6.0) == ["boom", "ok"]  # still scheduled after failing

    assert ran == ["ok", "ok"]
    records = [r for r in caplog.records if r.name == "core.scheduler"]
    assert [(r.getMessage(), r.job, r.error) for r in records] == [
        ("scheduled job failed", "boom", "ValueError")
    ] * 2
    assert "+1555" not in caplog.text and "hello" not in caplog.text


def test_the_thread_runs_jobs_and_stops_cleanly():
    ticked = threading.Event()
    sched = Scheduler([Job("tick", every=0.01, run=ticked.set)], tick=0.01)

    sched.start()
    thread = sched._thread
    sched.start()  # a second start does not add a thread
    assert sched._thread is thread
    assert ticked.wait(5)
    sched.stop(timeout=5)

    assert thread is not None and not thread.is_alive() and thread.daemon
    assert not sched.running


def test_one_scheduler_per_process(settings, monkeypatch):
    settings.EMBEDDED_SCHEDULER = True
    settings.CELERY_BROKER_URL = ""
    monkeypatch.setattr(
        scheduler, "embedded_scheduler", lambda: Scheduler([Job("noop", 60, lambda: None)])
    )
    server = {"argv": ["manage.py", "runserver"], "environ": {"RUN_MAIN": "true"}}
    try:
        first = scheduler.start_if_server(**server)
        second = scheduler.start_if_server(**server)
        assert first is not None and first is second and first.running
    finally:
        scheduler.stop()
    assert first is not None and not first.running


@pytest.mark.django_db
def test_a_due_flow_timeout_fires_through_the_scheduler(settings, tenant, twilio_channel):
    from conversations.models import Message
    from flows.models import FlowSession, SessionStatus
    from flows.services import flow_create
    from flows.tests.support import flow_doc, receive
    from tests import factories

    # given a question with a one-minute timeout (the shortest a flow may set), now due
    doc = flow_doc("t")
    doc["trigger"] = {"default": True}
    doc["nodes"][0]["timeout"] = {"seconds": 60, "next": "done_no"}
    flow_create(tenant=tenant, channel=twilio_channel, definition=doc)
    thread = factories.ThreadFactory(channel=twilio_channel)
    receive(thread, "hi")
    FlowSession.objects.filter(thread=thread).update(
        wait_expires_at=timezone.now() - timedelta(seconds=1)
    )
    sched = scheduler.embedded_scheduler()

    # when one tick of the embedded schedule runs
    ran = sched.run_due(now=10_000_000.0)

    # then the timeout fired and its reply is stored
    assert "process-flow-timeouts" in ran
    assert FlowSession.objects.get(thread=thread).status == SessionStatus.COMPLETED
    assert (
        Message.objects.filter(thread=thread, direction="outbound").order_by("created_at").last()
    ).text == "[t] You said no."
