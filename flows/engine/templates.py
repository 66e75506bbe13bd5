"""``{{ name }}`` placeholders: checking them at validation time and rendering them at run time.

Placeholders come from a closed set of namespaces: ``contact.name``, ``contact.phone``,
``tenant.name``, ``vars.NAME`` and ``input``. There are no expressions, filters or code, so
rendering can neither fail nor run anything.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VAR_NAME_PATTERN = r"[a-z][a-z0-9_]{0,39}"

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_KNOWN = re.compile(rf"contact\.name|contact\.phone|tenant\.name|input|vars\.{VAR_NAME_PATTERN}")

ALLOWED_PLACEHOLDERS = "contact.name, contact.phone, tenant.name, vars.NAME or input"


def template_errors(template: str) -> list[str]:
    """Return one message per placeholder outside the allowed namespaces (empty when valid)."""
    errors = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1).strip()
        if not _KNOWN.fullmatch(name):
            shown = match.group(0) if len(match.group(0)) <= 60 else match.group(0)[:57] + "..."
            errors.append(f"unknown placeholder {json.dumps(shown)}: use {ALLOWED_PLACEHOLDERS}")
    return errors


def template_variables(template: str) -> list[str]:
    """Names of the ``vars.NAME`` placeholders used in ``template``, in order of appearance."""
    names = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1).strip()
        if name.startswith("vars.") and _KNOWN.fullmatch(name):
            names.append(name.removeprefix("vars."))
    return names


@dataclass(frozen=True)
class TemplateContext:
    """The values placeholders can read. ``input`` is the text of the message being processed."""

    contact_name: str = ""
    contact_phone: str = ""
    tenant_name: str = ""
    input: str = ""
    variables: Mapping[str, Any] | None = None


def format_value(value: object) -> str:
    """Render a variable value as text.

    ``None`` renders as ``""``; a whole float renders without decimals (``2.0`` -> ``"2"``);
    booleans render as ``true``/``false``; other non-strings render as compact JSON.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


def render(template: str, context: TemplateContext) -> str:
    """Replace every placeholder in ``template``; never raises.

    A variable that has no value renders as ``""``. A placeholder outside the allowed namespaces
    (which validation rejects, so it only reaches here from unvalidated input) is left as written.
    """
    variables = context.variables or {}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if not _KNOWN.fullmatch(name):
            return match.group(0)
        if name == "contact.name":
            return context.contact_name
        if name == "contact.phone":
            return context.contact_phone
        if name == "tenant.name":
            return context.tenant_name
        if name == "input":
            return context.input
        return format_value(variables.get(name.removeprefix("vars.")))

    return _PLACEHOLDER.sub(substitute, template)
