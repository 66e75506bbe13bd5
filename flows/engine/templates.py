"""``{{ name }}`` placeholders: checking them at validation time and rendering them at run time.

Placeholders come from a closed set of namespaces: ``contact.name``, ``contact.phone``,
``tenant.name``, ``vars.NAME`` and ``input``. There are no expressions or code, so rendering
can neither fail nor run anything. One thing besides a name is allowed: a fallback text for an
empty value, ``{{ contact.name | default: "there" }}`` (or with single quotes, handier inside
JSON strings), a literal of 1 to 100 characters without quotes of its kind, braces or
backslashes.

Missing values read well (no "Hi ! Welcome"): a placeholder without a fallback whose value is
empty (or only spaces) takes the dangling punctuation of the sentence with it:

- the spaces before it go when what follows is the end of the text or line, a space or a
  punctuation mark (``Hi {{ contact.name }}! Welcome`` -> ``Hi! Welcome``;
  ``Hello {{ vars.x }} and`` -> ``Hello and``);
- then a comma right before it goes too when what follows is the end of the text or line or a
  punctuation mark (``Thanks, {{ contact.name }}!`` -> ``Thanks!``;
  ``Olá, {{ contact.name }}, tudo bem?`` -> ``Olá, tudo bem?``);
- at the start of the text or of a line, the spaces and punctuation marks after it go
  (``{{ contact.name }}, welcome!`` -> ``welcome!``), and so does the line break when the
  line is left empty.

Only the flow's own text around the placeholder is changed, never a value.
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
# `name | default: "text"` (or 'text'): the only thing a placeholder may hold besides a name.
_WITH_FALLBACK = re.compile(
    r"(?P<name>[^|]*?)\s*\|\s*default\s*:\s*"
    r"(?:\"(?P<double>[^\"{}\\]{1,100})\"|'(?P<single>[^'{}\\]{1,100})')\s*",
    re.DOTALL,
)
FALLBACK_MAX = 100

ALLOWED_PLACEHOLDERS = "contact.name, contact.phone, tenant.name, vars.NAME or input"
_SPACES = " \t"
_LINE_END = "\r\n"
_PUNCTUATION = ",.!?;:)"


@dataclass(frozen=True)
class _Placeholder:
    name: str
    fallback: str | None  # None: no `| default:` given
    valid: bool


def _parse(inner: str) -> _Placeholder:
    """What is between the braces: a name, optionally with a fallback."""
    text = inner.strip()
    if "|" in text:
        match = _WITH_FALLBACK.fullmatch(text)
        if match is None:
            return _Placeholder(name=text, fallback=None, valid=False)
        name = match.group("name").strip()
        fallback = match.group("double") or match.group("single")
        return _Placeholder(name=name, fallback=fallback, valid=bool(_KNOWN.fullmatch(name)))
    return _Placeholder(name=text, fallback=None, valid=bool(_KNOWN.fullmatch(text)))


def template_errors(template: str) -> list[str]:
    """Return one message per placeholder outside the allowed namespaces, or with anything
    but a well-formed `| default: "text"` after its name (empty when valid)."""
    errors = []
    for match in _PLACEHOLDER.finditer(template):
        placeholder = _parse(match.group(1))
        if placeholder.valid:
            continue
        shown = match.group(0) if len(match.group(0)) <= 60 else match.group(0)[:57] + "..."
        if "|" in match.group(1) and _KNOWN.fullmatch(placeholder.name.split("|")[0].strip()):
            errors.append(
                f"invalid placeholder {json.dumps(shown)}: after the name only "
                f'| default: "text" is allowed (1 to {FALLBACK_MAX} characters, in double '
                "or single quotes, without quotes of the same kind, braces or backslashes)"
            )
        else:
            errors.append(f"unknown placeholder {json.dumps(shown)}: use {ALLOWED_PLACEHOLDERS}")
    return errors


def template_variables(template: str) -> list[str]:
    """Names of the ``vars.NAME`` placeholders used in ``template``, in order of appearance."""
    names = []
    for match in _PLACEHOLDER.finditer(template):
        placeholder = _parse(match.group(1))
        if placeholder.valid and placeholder.name.startswith("vars."):
            names.append(placeholder.name.removeprefix("vars."))
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


def _value(name: str, context: TemplateContext) -> str:
    if name == "contact.name":
        return context.contact_name
    if name == "contact.phone":
        return context.contact_phone
    if name == "tenant.name":
        return context.tenant_name
    if name == "input":
        return context.input
    return format_value((context.variables or {}).get(name.removeprefix("vars.")))


def _strip_after_line_start(text: str) -> str:
    """`text` without the spaces and punctuation marks it starts with, and without the line
    break that then follows (the line held nothing else)."""
    position = 0
    while position < len(text) and text[position] in _SPACES + _PUNCTUATION:
        position += 1
    rest = text[position:]
    for line_break in ("\r\n", "\n", "\r"):
        if rest.startswith(line_break):
            return rest[len(line_break) :]
    return rest


def render(template: str, context: TemplateContext) -> str:
    """Replace every placeholder in ``template``; never raises.

    A value that is empty (or only spaces) renders as the placeholder's fallback when it has
    one, else as ``""`` with the text around it tidied (see the module docstring). A
    placeholder outside the allowed namespaces (which validation rejects, so it only reaches
    here from unvalidated input) is left as written.
    """
    # pieces: (text, kind): "text" of the template, a "value" (or fallback), or "empty" (an
    # empty placeholder without fallback). Only the template's own text is ever tidied.
    pieces: list[tuple[str, str]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append((template[position : match.start()], "text"))
        position = match.end()
        placeholder = _parse(match.group(1))
        if not placeholder.valid:
            pieces.append((match.group(0), "text"))
            continue
        value = _value(placeholder.name, context)
        if value.strip():
            pieces.append((value, "value"))
        elif placeholder.fallback is not None:
            pieces.append((placeholder.fallback, "value"))
        else:
            pieces.append(("", "empty"))
    pieces.append((template[position:], "text"))

    out = ""
    protected = 0  # out[:protected] ends with a value: never trimmed
    strip_next = False
    for index, (text, kind) in enumerate(pieces):
        if kind == "value":
            out += text
            protected = len(out)
            strip_next = False
            continue
        if kind == "text":
            if strip_next and text:
                text = _strip_after_line_start(text)
                strip_next = not text  # an empty piece passes the stripping on
            out += text
            continue
        before = out[:protected] + out[protected:].rstrip(_SPACES)
        if not before or before[-1] in _LINE_END:
            # At the start of the text or a line: what dangles after it goes.
            strip_next = True
            continue
        following = "".join(piece for piece, _ in pieces[index + 1 :])[:1]
        if not following or following in _SPACES + _LINE_END + _PUNCTUATION:
            out = before
            dangling_comma = out.endswith(",") and len(out) > protected
            if dangling_comma and (not following or following in _LINE_END + _PUNCTUATION):
                out = out[:-1]
    return out
