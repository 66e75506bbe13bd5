"""Flow selection, normalisation, keywords and templates."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from flows.engine import (
    FlowCandidate,
    TemplateContext,
    is_keyword,
    match_keyword_flow,
    normalize,
    render,
    select_flow,
)


def candidate(
    key: str,
    keywords: tuple[str, ...] = (),
    match: str = "first_word",
    is_default: bool = False,
    weight: int = 100,
) -> FlowCandidate:
    return FlowCandidate(key, keywords, match, is_default, weight)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Olá!  ", "ola"),
        ("SÍM.", "sim"),
        ("¿Qué?", "que"),
        ("Book   a\tFREE trial!!", "book a free trial"),
        ("👍 yes 👍", "yes"),
        ("１２３", "123"),
        ("Straße", "strasse"),
        ("...", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_is_keyword_whole_message_only() -> None:
    assert is_keyword(" STOP! ", ["stop", "parar"])
    assert is_keyword("Parar", ["stop", "parar"])
    assert not is_keyword("stop it", ["stop"])
    assert not is_keyword("", ["", "stop"])


@pytest.mark.parametrize(
    ("text", "match", "expected"),
    [
        ("Hi there", "first_word", True),
        ("hi, there", "first_word", True),
        ("HI!", "first_word", True),
        ("oh hi", "first_word", False),
        ("Hi there", "only_word", False),
        (" hi. ", "only_word", True),
    ],
)
def test_keyword_match_modes(text: str, match: str, expected: bool) -> None:
    flows = [candidate("greet", ("hi",), match)]
    assert (match_keyword_flow(flows, text) is not None) is expected


def test_keyword_match_normalises_keywords_and_handles_phrases() -> None:
    flows = [candidate("clinic", ("olá", "free trial"))]
    assert match_keyword_flow(flows, "OLA, tudo bem?") == flows[0]
    assert match_keyword_flow(flows, "Free trial please") == flows[0]
    assert match_keyword_flow(flows, "free") is None


def test_keyword_conflicts_resolve_independently_of_order() -> None:
    flows = [candidate("b", ("book",)), candidate("a", ("book",)), candidate("c", ("book now",))]
    for _ in range(5):
        random.shuffle(flows)
        assert match_keyword_flow(flows, "book now").key == "c"  # type: ignore[union-attr]
        assert match_keyword_flow(flows, "book later").key == "a"  # type: ignore[union-attr]


def test_select_prefers_keyword_then_default_then_none() -> None:
    keyword = candidate("kw", ("menu",))
    default = candidate("def", is_default=True)
    assert select_flow([default, keyword], "menu", "c1") == keyword
    assert select_flow([default, keyword], "hello", "c1") == default
    assert select_flow([keyword], "hello", "c1") is None
    assert select_flow([], "hello", "c1") is None


def test_default_choice_is_sticky_and_order_independent() -> None:
    flows = [candidate(f"v{i}", is_default=True, weight=w) for i, w in enumerate((10, 30, 60))]
    for contact in range(50):
        sticky = f"contact-{contact}:channel-1"
        chosen = select_flow(flows, "hello", sticky)
        for _ in range(3):
            shuffled = random.sample(flows, len(flows))
            assert select_flow(shuffled, "anything else", sticky) == chosen


def test_default_choice_follows_the_weights() -> None:
    flows = [candidate("a", is_default=True, weight=25), candidate("b", is_default=True, weight=75)]
    counts = Counter(
        select_flow(flows, "hi", f"contact-{n}").key  # type: ignore[union-attr]
        for n in range(4000)
    )
    assert 0.21 < counts["a"] / 4000 < 0.29
    assert 0.71 < counts["b"] / 4000 < 0.79


def test_render_templates() -> None:
    context = TemplateContext(
        contact_name="Ana",
        contact_phone="+1",
        tenant_name="Acme",
        input="hey",
        variables={"n": 2.0, "f": 2.5, "s": "x", "none": None, "b": True, "i": 7},
    )
    template = "{{contact.name}}|{{ contact.phone }}|{{  tenant.name  }}|{{ input }}|" + (
        "{{ vars.n }}|{{ vars.f }}|{{ vars.s }}|{{ vars.none }}|{{ vars.missing }}|{{ vars.b }}|"
        "{{ vars.i }}"
    )
    assert render(template, context) == "Ana|+1|Acme|hey|2|2.5|x|||true|7"


def test_render_leaves_unknown_placeholders_and_plain_braces() -> None:
    assert render("{{ nope }} { x } {{", TemplateContext()) == "{{ nope }} { x } {{"
