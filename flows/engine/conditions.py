"""Evaluation of ``branch`` conditions. Pure and total: never raises for a validated condition."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from . import patterns
from .definition import (
    AllCondition,
    AnyCondition,
    Condition,
    InputCondition,
    NotCondition,
    VarCondition,
)
from .templates import format_value
from .text import normalize, words

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_MAX_NUMBER_CHARS = 40
_MISSING: Any = object()


def to_number(value: object) -> int | float | None:
    """Read ``value`` as a number, or ``None`` when it is not one.

    Integers and finite floats are numbers; booleans are not; a string is a number when, with
    surrounding white space removed, it is a plain decimal such as ``"3"``, ``"-2.5"`` or ``".5"``
    (at most 40 characters, so parsing stays cheap).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_NUMBER_CHARS or not _NUMBER.fullmatch(text):
            return None
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        return float(text)
    return None


def _has_value(subject: object) -> bool:
    if subject is _MISSING or subject is None:
        return False
    if isinstance(subject, str):
        return bool(subject.strip())
    return True


def _equals(subject: object, value: object) -> bool:
    left, right = to_number(subject), to_number(value)
    if left is not None and right is not None:
        return left == right
    return normalize(format_value(subject)) == normalize(format_value(value))


def _contains(subject: object, value: object) -> bool:
    haystack = words(format_value(subject))
    needles = value if isinstance(value, list) else [value]
    for needle in needles:
        if not isinstance(needle, str):
            continue
        sought = words(needle)
        if not sought:
            continue
        width = len(sought)
        if any(haystack[i : i + width] == sought for i in range(len(haystack) - width + 1)):
            return True
    return False


def _matches(subject: object, pattern: object) -> bool:
    if not isinstance(pattern, str):
        return False
    return patterns.search(pattern, format_value(subject).strip())


def _compare(op: str, subject: object, value: object) -> bool:
    if op == "exists":
        return _has_value(subject)
    if subject is _MISSING:
        subject = None
    if op == "eq":
        return _equals(subject, value)
    if op == "ne":
        return not _equals(subject, value)
    if op == "in":
        return isinstance(value, list) and any(_equals(subject, item) for item in value)
    if op == "contains":
        return _contains(subject, value)
    if op == "matches":
        return _matches(subject, value)
    left, right = to_number(subject), to_number(value)
    if left is None or right is None:
        return False
    if op == "gt":
        return left > right
    if op == "gte":
        return left >= right
    if op == "lt":
        return left < right
    if op == "lte":
        return left <= right
    return False


def evaluate(condition: Condition, variables: Mapping[str, Any], input_text: str) -> bool:
    """Decide ``condition`` against the flow ``variables`` and the latest inbound text.

    Text comparisons (``eq``, ``ne``, ``in``, ``contains``) are on normalised text, except that two
    numbers (or numeric strings) compare as numbers, so ``"18"`` equals ``18.0``. ``contains``
    is true when any of the words (or word sequences) occurs as whole words. ``matches`` searches
    the regex in the text as received (surrounding white space removed); anchor it with ``^...$``
    to match the whole text. Numeric operators are false when either side is not a number.
    ``exists`` is true when the variable (or input) has a non-empty value.
    """
    if isinstance(condition, AllCondition):
        return all(evaluate(item, variables, input_text) for item in condition.all)
    if isinstance(condition, AnyCondition):
        return any(evaluate(item, variables, input_text) for item in condition.any)
    if isinstance(condition, NotCondition):
        return not evaluate(condition.not_, variables, input_text)
    if isinstance(condition, VarCondition):
        return _compare(condition.op, variables.get(condition.var, _MISSING), condition.value)
    if isinstance(condition, InputCondition):
        return _compare(condition.op, input_text, condition.value)
    return False
