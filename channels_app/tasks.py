"""The periodic sync of message templates; and, kept importable under their old names, the
media download and sandbox status tasks, which live in `conversations.tasks` now (the beat
schedule and the embedded scheduler find a task by its name, which is this module's path)."""

from celery import shared_task

from conversations.tasks import advance_sandbox_statuses, download_attachment

__all__ = ["advance_sandbox_statuses", "download_attachment", "sync_templates"]


@shared_task(name="channels_app.tasks.sync_templates", ignore_result=True)
def sync_templates() -> dict[str, int]:
    """Every active channel's message templates from its provider (every
    TEMPLATES_SYNC_SECONDS by the schedule; see channels_app.templates)."""
    from channels_app.templates import templates_sync_all

    return templates_sync_all()
