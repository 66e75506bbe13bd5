"""Flow authors' regexes, run on contacts' text with a time limit.

Patterns come from tenants and subjects from the public, so a catastrophic pattern such as
``(a+)+$`` must not stall a worker: matching uses the ``regex`` package (a superset of ``re``)
with a timeout, and a match that runs out of time counts as no match.
"""

from typing import Any

import regex  # type: ignore[import-untyped]

MATCH_TIMEOUT_SECONDS = 0.05


def compile_check(pattern: str) -> None:
    """Raise ValueError when ``pattern`` does not compile.

    The message is a predicate naming the problem ("is not a valid regex: ..."), to follow the
    path or name of what holds the pattern.
    """
    try:
        regex.compile(pattern)
    except Exception as exc:  # regex.error, and RecursionError/OverflowError on odd patterns
        raise ValueError(f"is not a valid regex: {exc}") from None


def _run(method: str, pattern: str, text: str) -> bool:
    try:
        result: Any = getattr(regex, method)(pattern, text, timeout=MATCH_TIMEOUT_SECONDS)
    except TimeoutError:
        return False
    except Exception:  # a pattern that slipped past validation: no match, never a crash
        return False
    return result is not None


def fullmatch(pattern: str, text: str) -> bool:
    """True when ``pattern`` matches the whole ``text`` within the time limit."""
    return _run("fullmatch", pattern, text)


def search(pattern: str, text: str) -> bool:
    """True when ``pattern`` matches somewhere in ``text`` within the time limit."""
    return _run("search", pattern, text)
