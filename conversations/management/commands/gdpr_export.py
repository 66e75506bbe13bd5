"""`manage.py gdpr_export`: everything held about one contact, as JSON."""

import json
import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.services.privacy import ContactNotFound, contact_export, contact_find


class Command(BaseCommand):
    help = (
        "Export everything held about a contact (decrypted) as JSON, on standard output unless "
        "--output is given."
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
        parser.add_argument("--output", help="Write the JSON to this file instead of stdout.")

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
        document = json.dumps(contact_export(contact=contact), ensure_ascii=False, indent=2)
        if options["output"]:
            path = Path(options["output"])
            try:
                # Decrypted personal data: readable by the owner only, from the first byte.
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(descriptor, 0o600)  # also when the file already existed
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(document + "\n")
            except OSError as exc:
                raise CommandError(f"Cannot write {path}: {exc.strerror}.") from exc
            self.stderr.write(f"Exported contact {contact.pk} to {path}.")
        else:
            self.stdout.write(document)
