"""No function outside migrations and tests is at radon grade D or worse (cyclomatic
complexity above 20): past that, a function is split along its phases, or its branches become
a table (README, Development)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Function

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 20
SKIPPED = {".venv", "migrations", "tests", "bench", "node_modules"}


def _sources() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = set(path.relative_to(ROOT).parts)
        if not parts & SKIPPED and not path.name.startswith("test"):
            yield path


def _functions(blocks: list) -> Iterator[Function]:
    for block in blocks:
        if isinstance(block, Function):
            yield block
        yield from _functions(list(getattr(block, "closures", [])))
        yield from _functions(list(getattr(block, "inner_classes", [])))


def test_the_walk_sees_the_project() -> None:
    paths = {path.relative_to(ROOT).as_posix() for path in _sources()}
    assert "conversations/services/outbound.py" in paths
    assert not any("/migrations/" in path for path in paths)


def test_no_function_is_at_grade_d_or_worse() -> None:
    too_complex = {
        f"{path.relative_to(ROOT)}:{function.lineno} {function.fullname} ({function.complexity})"
        for path in _sources()
        for function in _functions(cc_visit(path.read_text(encoding="utf-8")))
        if function.complexity > LIMIT
    }
    assert not too_complex, sorted(too_complex)
