from django.core.management.base import BaseCommand
from django.utils import timezone

from conversations.services.process import flow_expire_stale_sessions, flow_fire_due_timeouts


class Command(BaseCommand):
    help = "Fire due question/input timeouts and expire stale flow sessions (also a periodic task)."

    def handle(self, *args: object, **options: object) -> None:
        now = timezone.now()
        fired = flow_fire_due_timeouts(now=now, expire_stale=False)
        expired = flow_expire_stale_sessions(now=now)
        self.stdout.write(f"Fired {fired} timeout(s), expired {expired} stale session(s).")
