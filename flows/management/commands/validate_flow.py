"""``manage.py validate_flow FILE...``: check flow files before uploading them."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from flows.engine.reading import MAX_FLOW_BYTES, FlowReadError, flow_json_from_bytes
from flows.services import flow_validate


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _read(path: Path) -> object:
    """The parsed JSON of ``path``; :class:`FlowReadError` when it cannot be read or parsed.

    Reads at most ``MAX_FLOW_BYTES + 1`` bytes, so a huge file is refused without loading it.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FLOW_BYTES + 1)
    except OSError as exc:
        raise FlowReadError(
            "file", f"cannot be read: {exc.strerror or type(exc).__name__}"
        ) from None
    return flow_json_from_bytes(raw, max_bytes=MAX_FLOW_BYTES)


class Command(BaseCommand):
    help = (
        "Validate flow definition files. Checks every file given and prints, for each, "
        "'OK <file>' or 'INVALID <file>' followed by its errors (a file that cannot be read or "
        "is not JSON is invalid too), then how many files are valid. Exits with status 1 when "
        "any file is invalid, 0 otherwise. Files are refused for the same reasons as uploads "
        f"(larger than {MAX_FLOW_BYTES // 1024} KiB, not UTF-8, not JSON)."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("files", nargs="+", metavar="FILE", help="flow JSON files")

    def handle(self, *args: object, **options: object) -> None:
        files = [Path(str(name)) for name in options["files"]]  # type: ignore[attr-defined]
        valid = 0
        for path in files:
            try:
                document = _read(path)
            except FlowReadError as exc:
                self.stdout.write(self.style.ERROR(f"INVALID {path}"))
                self.stdout.write(f"  the file {exc.reason}")
                continue
            issues = flow_validate(definition=document)
            if not issues:
                valid += 1
                self.stdout.write(self.style.SUCCESS(f"OK {path}"))
                continue
            self.stdout.write(self.style.ERROR(f"INVALID {path} ({_plural(len(issues), 'error')})"))
            for issue in issues:
                self.stdout.write(f"  {issue.location or '(root)'}: {issue.message}")
        verb = "is" if 1 in (valid, len(files)) else "are"
        self.stdout.write(f"{valid} of {_plural(len(files), 'file')} {verb} valid")
        if valid < len(files):
            raise SystemExit(1)
