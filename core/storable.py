"""Values that PostgreSQL and UTF-8 can store: no NUL character, no lone surrogate, no
infinite number.

PostgreSQL refuses NUL in text and JSONB, and UTF-8 (the encryption, the database drivers)
refuses lone surrogates, so either one in a value that reaches the database is a 500 unless it
is caught first. Values from people (API bodies, uploaded flows) are rejected with the path of
each bad string (`unstorable`); values from providers are repaired instead (`clean`), because a
webhook must never be refused for what the sender typed.

Pure Python, no Django: the flow engine uses it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

Loc = tuple[str | int, ...]


def text_problem(text: str) -> str | None:
    """What keeps `text` out of the database, or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an invalid character (a lone surrogate)"
    return None


def unstorable(value: object, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """(location, problem) of every string in a JSON-like value, keys included, that cannot be
    stored, and of every number that is not finite (Python's JSON reads NaN, Infinity and
    1e400; PostgreSQL's JSONB refuses them). A bad key is reported at its parent's location."""
    if isinstance(value, float) and not math.isfinite(value):
        yield loc, "is not a finite number"
    elif isinstance(value, str):
        problem = text_problem(value)
        if problem:
            yield loc, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key) if isinstance(key, str) else None
            if problem:
                yield loc, f"has a key that {problem.removeprefix('contains ')}"
            else:
                yield from unstorable(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from unstorable(item, (*loc, index))


def clean(value: object) -> object:
    """The value with NUL characters removed and lone surrogates replaced, recursively."""
    if isinstance(value, str):
        value = value.replace("\x00", "")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return value
    if isinstance(value, list):
        return [clean(item) for item in value]
    if isinstance(value, dict):
        return {clean(key): clean(item) for key, item in value.items()}
    return value
