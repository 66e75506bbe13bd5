"""`manage.py gdpr_erase`: erase a contact's personal data, keeping a tombstone."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.services.privacy import (
    ContactBusyError,
    ContactNotFound,
    contact_erase,
    contact_find,
)


class Command(BaseCommand):
    help = (
        "Erase a contact: PII and message texts removed, attachments deleted, blind index "
        "cleared, sessions ended, a tombstone kept. Prints counts; running it again changes "
        "nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant id (UUID).")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--contact", help="Contact id (UUID).")
        who.add_argument("--phone", help="Phone number in E.164, e.g. +5511988887777.")
        who.add_argument(
            "--wa-user-id", help="WhatsApp business-scoped user id, e.g. US.13491208655302741918."
        )
        who.add_argument(
            "--ig-user-id", help="Instagram-scoped user id (IGSID) of an Instagram contact."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            contact = contact_find(
                tenant_id=options["tenant"],
                contact_id=options["contact"],
                phone=options["phone"],
                wa_user_id=options["wa_user_id"],
                ig_user_id=options["ig_user_id"],
            )
        except ContactNotFound as exc:
            raise CommandError(str(exc)) from exc
        try:
            report = contact_erase(contact=contact, dry_run=options["dry_run"])
        except ContactBusyError as exc:
            raise CommandError(str(exc)) from exc
        verb = "would change" if report.dry_run else "changed"
        self.stdout.write(f"Contact {report.contact_id}: {verb}")
        for name, count in report.counts().items():
            self.stdout.write(f"  {name}: {count}")
        if not report.changed:
            self.stdout.write("Nothing to erase (already erased).")
