"""Reading query parameters strictly: a value that cannot be read is a 400 naming it."""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

_WHOLE_NUMBER = re.compile(r"[0-9]+")
# Longer numbers are read as this (above every maximum; a page past the last one).
_HUGE = 10**18


def single_query_params(request: Request, names: list[str]) -> dict[str, Any]:
    """The query parameters `names` that were given, each once (a repeated one is a 400)."""
    params: dict[str, Any] = {}
    for name in names:
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise ValidationError({name: ["Give this parameter once."]})
        if values:
            params[name] = values[0]
    return params


def query_int(
    request: Request, name: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    """The query parameter `name` as an int in [minimum, maximum]; None when absent."""
    value = single_query_params(request, [name]).get(name)
    if value is None:
        return None
    if not _WHOLE_NUMBER.fullmatch(value):
        raise ValidationError({name: ["Must be a whole number."]})
    number = int(value) if len(value) <= 18 else _HUGE
    if number < minimum or (maximum is not None and number > maximum):
        bounds = f"from {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ValidationError({name: [f"Must be a whole number {bounds}."]})
    return number
