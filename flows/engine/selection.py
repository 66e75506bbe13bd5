"""Choosing the flow that starts for an inbound message. Pure and deterministic."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from .text import normalize, words


@dataclass(frozen=True)
class FlowCandidate:
    """An active flow of a channel as selection sees it (``key`` identifies it to the caller)."""

    key: str
    keywords: tuple[str, ...]
    match: str  # "first_word" or "only_word"
    is_default: bool
    weight: int


def _keyword_length(candidate: FlowCandidate, text: str) -> int:
    """Words in the longest of ``candidate``'s keywords that ``text`` triggers; 0 for none."""
    message = words(text)
    if not message:
        return 0
    best = 0
    for keyword in candidate.keywords:
        wanted = words(keyword)
        if not wanted:
            continue
        if candidate.match == "only_word":
            hit = normalize(text) == normalize(keyword)
        else:
            hit = message[: len(wanted)] == wanted
        if hit:
            best = max(best, len(wanted))
    return best


def match_keyword_flow(candidates: Iterable[FlowCandidate], text: str) -> FlowCandidate | None:
    """The flow whose keyword trigger claims ``text``, or ``None``.

    ``first_word``: the message's first word (or first words, for a keyword of several words)
    equals the keyword; ``only_word``: the whole message equals it. Both sides are normalised
    (case, accents, punctuation). When several flows claim a message, the longest keyword wins,
    then the smallest ``key``, so the result does not depend on the order of ``candidates``.
    """
    best: tuple[int, str] | None = None
    chosen: FlowCandidate | None = None
    for candidate in candidates:
        length = _keyword_length(candidate, text)
        if not length:
            continue
        rank = (-length, candidate.key)
        if best is None or rank < best:
            best, chosen = rank, candidate
    return chosen


def _bucket(sticky_key: str, total: int) -> int:
    digest = hashlib.sha256(sticky_key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % total


def choose_default_flow(
    candidates: Iterable[FlowCandidate], sticky_key: str
) -> FlowCandidate | None:
    """A weighted, deterministic choice among the default flows, or ``None`` without any.

    The same ``sticky_key`` (contact and channel) always gets the same flow while the set of
    default flows and their weights stay the same, whatever the order of ``candidates``. Over
    many keys each flow gets a share proportional to its ``weight`` (weights below 1 count as 1).
    """
    defaults = sorted((c for c in candidates if c.is_default), key=lambda c: c.key)
    if not defaults:
        return None
    weights = [max(1, candidate.weight) for candidate in defaults]
    point = _bucket(sticky_key, sum(weights))
    for candidate, weight in zip(defaults, weights, strict=True):
        if point < weight:
            return candidate
        point -= weight
    return defaults[-1]  # pragma: no cover - point < sum(weights)


def select_flow(
    candidates: Iterable[FlowCandidate], text: str, sticky_key: str
) -> FlowCandidate | None:
    """The flow to start for ``text``: a keyword trigger first, else a default flow, else None."""
    pool = list(candidates)
    return match_keyword_flow(pool, text) or choose_default_flow(pool, sticky_key)
