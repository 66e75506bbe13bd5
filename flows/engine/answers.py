"""Validation of free-text answers to ``input`` nodes."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from . import patterns
from .definition import InputRule, RegexRule

MAX_ANSWER_LENGTH = 4096

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]{2,}")
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")
_PHONE_SEPARATORS = re.compile(r"[\s().\-/]")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_YEAR_FIRST_DATE = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})")
_LOCAL_DATE = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})")

# Languages whose usual short date puts the month first (CLDR): American English and a few
# territories that follow it. Plain "en" follows CLDR's root English, which is en-US.
_MONTH_FIRST_LANGUAGES = frozenset(
    {"en", "en-us", "en-as", "en-gu", "en-mp", "en-pr", "en-um", "en-vi", "en-ph", "fil"}
)


@dataclass(frozen=True)
class Answer:
    """The outcome of validating an answer: ``valid`` and the value to store."""

    valid: bool
    value: str | int | float | None = None


_INVALID = Answer(valid=False)

# Rules answered by a message's structured content rather than its text: a shared location,
# a WhatsApp Flow's answers. The runtime stores that content; `check_answer` refuses any text.
STRUCTURED_RULES = frozenset({"location", "flow_reply"})


def _number(text: str, language: str) -> Answer:
    if len(text) > 40 or not _NUMBER.fullmatch(text):
        return _INVALID
    if "," in text:
        if _primary_language(language) == "en":
            return _INVALID  # "1,000" is a thousands separator in English: too ambiguous to guess
        text = text.replace(",", ".")
    if "." in text:
        return Answer(valid=True, value=float(text))
    return Answer(valid=True, value=int(text))


def _phone(text: str) -> Answer:
    compact = _PHONE_SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if _E164.fullmatch(compact):
        return Answer(valid=True, value=compact)
    return _INVALID


def _date(text: str, language: str) -> Answer:
    year = month = day = None
    if match := (_ISO_DATE.fullmatch(text) or _YEAR_FIRST_DATE.fullmatch(text)):
        year, month, day = (int(part) for part in match.groups())
    elif match := _LOCAL_DATE.fullmatch(text):
        first, second, year = (int(part) for part in match.groups())
        month_first = language.casefold() in _MONTH_FIRST_LANGUAGES
        month, day = (first, second) if month_first else (second, first)
    if year is None or month is None or day is None:
        return _INVALID
    try:
        return Answer(valid=True, value=dt.date(year, month, day).isoformat())
    except ValueError:
        return _INVALID


def _primary_language(language: str) -> str:
    return language.split("-", 1)[0].casefold()


def check_answer(rule: InputRule, text: str | None, language: str) -> Answer:
    """Validate ``text`` under ``rule`` and return the value to store.

    - every rule: surrounding white space is removed and an empty answer is invalid;
    - ``any``: the text;
    - ``email``: ``local@domain.tld`` without spaces, at most 254 characters;
    - ``number``: a plain decimal (``42``, ``-3.5``; a decimal comma is read as a decimal point
      except in English flows), stored as ``int`` or ``float``;
    - ``phone``: spaces, dashes, dots, slashes and parentheses dropped, ``00`` read as ``+``;
      must then be E.164 (``+`` and 7-15 digits), stored in that form. A national number without
      country code is invalid, because the engine cannot know the country;
    - ``date``: ``YYYY-MM-DD`` (or ``YYYY/MM/DD``), or ``dd/mm/yyyy`` (``mm/dd/yyyy`` for US English
      and plain ``en``) with ``/``, ``.`` or ``-``; must be a real calendar date; stored as ISO;
    - ``{"regex": ...}``: the regex must match the whole text; stored as the text;
    - ``location`` and ``flow_reply`` (STRUCTURED_RULES) take no text: the runtime checks the
      message's kind and stores its structured content instead.
    """
    if isinstance(rule, str) and rule in STRUCTURED_RULES:
        return _INVALID
    answer = (text or "").strip()
    if not answer or len(answer) > MAX_ANSWER_LENGTH:
        return _INVALID
    if isinstance(rule, RegexRule):
        matched = patterns.fullmatch(rule.regex, answer)
        return Answer(valid=True, value=answer) if matched else _INVALID
    if rule == "any":
        return Answer(valid=True, value=answer)
    if rule == "email":
        valid = len(answer) <= 254 and _EMAIL.fullmatch(answer) is not None
        return Answer(valid=True, value=answer) if valid else _INVALID
    if rule == "number":
        return _number(answer, language)
    if rule == "phone":
        return _phone(answer)
    if rule == "date":
        return _date(answer, language)
    return _INVALID
