"""Text normalisation shared by choice matching, keyword triggers, opt-out/opt-in and conditions."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# Unicode general-category prefixes stripped from both ends of a message: punctuation, symbols
# (emoji included), separators, control/format characters and stray marks.
_EDGE_CATEGORIES = ("P", "S", "Z", "C", "M")


def _is_edge_char(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith(_EDGE_CATEGORIES)


def normalize(text: str) -> str:
    """Return ``text`` in the form every comparison in the engine uses.

    Guarantees: case-folded; accents removed (NFKD decomposition without combining marks, so
    ``"Olá"`` becomes ``"ola"`` and full-width digits become ASCII); runs of white space inside
    collapsed to one space; white space, punctuation and symbols at both ends removed. The result
    is idempotent: ``normalize(normalize(x)) == normalize(x)``.
    """
    result = _fold(text)
    # Case folding can produce characters that decompose or fold further (rare); settle on a
    # fixed point so that the idempotence guarantee holds.
    for _ in range(3):
        again = _fold(result)
        if again == result:
            break
        result = again
    return result


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _fold(text: str) -> str:
    folded = " ".join(_strip_marks(_strip_marks(text).casefold()).split())
    start, end = 0, len(folded)
    while start < end and _is_edge_char(folded[start]):
        start += 1
    while end > start and _is_edge_char(folded[end - 1]):
        end -= 1
    return folded[start:end]


_VARIATION_SELECTORS = frozenset("\ufe0e\ufe0f")


def symbol_form(text: str) -> str:
    """What a reply or label made only of symbols (emoji) is compared by, since ``normalize``
    empties it: the symbols themselves without white space or variation selectors, so that
    ``"👍"`` and ``"👍\ufe0f "`` are the same answer."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in _VARIATION_SELECTORS)


def match_term(text: str) -> str:
    """The key a reply or a choice term is matched by: ``normalize(text)``, or for text made
    only of symbols (which normalises to nothing) its ``symbol_form`` marked as such."""
    normalised = normalize(text)
    if normalised:
        return normalised
    bare = symbol_form(text)
    return f"\x00symbols:{bare}" if bare else ""


def words(text: str) -> list[str]:
    """Split ``text`` into normalised words, dropping punctuation around each word.

    ``words("Hi, I want a TRIAL!")`` is ``["hi", "i", "want", "a", "trial"]``.
    """
    result = []
    for token in normalize(text).split(" "):
        word = normalize(token)
        if word:
            result.append(word)
    return result


def is_keyword(text: str, keywords: Iterable[str]) -> bool:
    """True when the whole message, normalised, equals one of ``keywords`` (also normalised).

    Used for opt-out/opt-in lists and AI exit keywords. An empty message never matches, even
    when a keyword normalises to the empty string.
    """
    normalised = normalize(text)
    if not normalised:
        return False
    return any(normalised == normalize(keyword) for keyword in keywords)
