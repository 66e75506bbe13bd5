"""The old home of the media download and sandbox status tasks; they live in
`conversations.tasks` now (same task names). Kept importable: the beat schedule and the
embedded scheduler find a task by its name, which is this module's path."""

from conversations.tasks import advance_sandbox_statuses, download_attachment

__all__ = ["advance_sandbox_statuses", "download_attachment"]
