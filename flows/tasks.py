"""Celery tasks of the flows app (names are fixed: the beat schedule refers to them)."""

from celery import shared_task

from flows.services import flow_expire_stale_sessions, flow_fire_due_timeouts


@shared_task(name="flows.tasks.process_flow_timeouts", ignore_result=True)
def process_flow_timeouts() -> dict[str, int]:
    """Fire due question/input timeouts and expire stale sessions (every 30 s by beat)."""
    from django.utils import timezone

    now = timezone.now()
    fired = flow_fire_due_timeouts(now=now, expire_stale=False)
    expired = flow_expire_stale_sessions(now=now)
    return {"fired": fired, "expired": expired}
