"""Turning the bytes or text of a flow file into parsed JSON, with one wording for every caller.

The admin's upload form, the API's flow upload and ``manage.py validate_flow`` all read flow
documents through these functions, so a file is refused for the same reasons everywhere: too large,
not UTF-8, not JSON (with line and column), or JSON that Python cannot parse (nested too deeply, a
number too long). Validation of the parsed document is :func:`flows.engine.validate_flow`.
"""

from __future__ import annotations

import json

MAX_FLOW_BYTES = 1024 * 1024
"""The largest flow file the API accepts, and the limit ``validate_flow`` checks files against."""


class FlowReadError(ValueError):
    """The input cannot be read as a flow document.

    ``reason`` is a predicate without a subject ("is not UTF-8 text"), so that the caller can
    name what was read: ``f"The file {error.reason}."``. ``kind`` says which check failed:
    ``"size"`` or ``"encoding"`` (the bytes) or ``"json"`` (the text).
    """

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(reason)


def _size(limit: int) -> str:
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


def flow_json_from_text(text: str) -> object:
    """Parse ``text`` as JSON. Raises :class:`FlowReadError`, and no other exception."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlowReadError(
            "json", f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except (ValueError, RecursionError):
        raise FlowReadError(
            "json", "cannot be read as JSON (nesting too deep or a number too long)"
        ) from None


def flow_json_from_bytes(raw: bytes, *, max_bytes: int = MAX_FLOW_BYTES) -> object:
    """Decode ``raw`` as UTF-8 (a byte order mark is allowed) and parse it as JSON.

    Raises :class:`FlowReadError` when ``raw`` is longer than ``max_bytes``, is not UTF-8 or is not
    JSON that can be read; no other exception. Pass at most ``max_bytes + 1`` bytes: the rest is
    never needed to refuse a file.
    """
    if len(raw) > max_bytes:
        raise FlowReadError("size", f"is larger than {_size(max_bytes)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FlowReadError("encoding", "is not UTF-8 text") from None
    return flow_json_from_text(text)
