import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from flows.services import flow_validate


class Command(BaseCommand):
    help = (
        "Validate flow definition files. Prints every error with its JSON path and 'OK <file>' "
        "for valid files; exits with status 1 when any file is invalid."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("files", nargs="+", metavar="FILE", help="flow JSON files")

    def handle(self, *args: object, **options: object) -> None:
        invalid = 0
        for name in options["files"]:  # type: ignore[union-attr]
            path = Path(str(name))
            try:
                raw = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
                raise CommandError(f"Cannot read {path}: {reason}.") from None
            try:
                document = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise CommandError(
                    f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
                ) from None
            except (ValueError, RecursionError):
                raise CommandError(
                    f"{path}: this JSON cannot be read (nesting too deep or a number too long)."
                ) from None
            issues = flow_validate(definition=document)
            if not issues:
                self.stdout.write(f"OK {path}")
                continue
            invalid += 1
            self.stdout.write(f"INVALID {path} ({len(issues)} error(s))")
            for issue in issues:
                self.stdout.write(f"  {issue.path or '(root)'}: {issue.message}")
        if invalid:
            raise SystemExit(1)
