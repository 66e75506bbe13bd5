"""Templates with missing values (#13 item 6): a fallback text, `{{ name | default: "…" }}`,
and, without one, an empty value that takes the dangling space and comma with it, so a
contact without a profile name is never greeted "Hi ! Welcome"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.engine import FlowValidationError, parse_flow
from flows.engine.templates import TemplateContext, render, template_errors, template_variables
from flows.tests.support import example, flow_doc, receive
from tests import factories

NOBODY = TemplateContext(tenant_name="Acme", variables={"blank": "   ", "zero": 0})
ANA = TemplateContext(contact_name="Ana", tenant_name="Acme", input="hello", variables={"x": "y"})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # the space before the empty value goes when punctuation, a space or the end follows
        ("Hi {{ contact.name }}! Welcome to {{ tenant.name }}.", "Hi! Welcome to Acme."),
        ("Hi {{ contact.name }}.", "Hi."),
        ("Hi {{ contact.name }}", "Hi"),
        ("Hello {{ contact.name }} and welcome", "Hello and welcome"),
        ("Hi {{ contact.name }}\nWelcome", "Hi\nWelcome"),
        ("Hi {{ contact.name }} {{ vars.missing }}!", "Hi!"),
        # a comma right before it goes too when punctuation or the end follows
        ("Thanks for reaching out, {{ contact.name }}!", "Thanks for reaching out!"),
        ("Olá, {{ contact.name }}, tudo bem?", "Olá, tudo bem?"),
        ("Thanks, {{ contact.name }}", "Thanks"),
        ("Hi, {{ contact.name }} there", "Hi, there"),
        # at the start of a line: what dangles after it goes, and a line left empty
        ("{{ contact.name }}, welcome!", "welcome!"),
        ("Hi\n{{ contact.name }}\nBye", "Hi\nBye"),
        ("{{ contact.name }}!\n{{ input }}, ok", "ok"),
        # a value of spaces only is empty; a word right after keeps the text as written
        ("Hi {{ vars.blank }}!", "Hi!"),
        ("Hi {{ contact.name }}san", "Hi san"),
        # values are never changed, only the flow's text around an empty one
        ("Total: {{ vars.zero }} !", "Total: 0 !"),
        ("{{ nope }} !", "{{ nope }} !"),
    ],
)
def test_an_empty_value_takes_its_dangling_punctuation(template, expected):
    assert render(template, NOBODY) == expected


@pytest.mark.parametrize(
    ("template", "nobody", "ana"),
    [
        ('Hi {{ contact.name | default: "there" }}!', "Hi there!", "Hi Ana!"),
        ("Hi {{contact.name|default:'you'}}!", "Hi you!", "Hi Ana!"),
        ('Plan: {{ vars.x | default: "none yet" }}.', "Plan: none yet.", "Plan: y."),
        ('{{ vars.blank | default: "—" }}', "—", "—"),
        ('You said {{ input | default: "nothing" }}', "You said nothing", "You said hello"),
    ],
)
def test_a_fallback_replaces_an_empty_value(template, nobody, ana):
    assert render(template, NOBODY) == nobody
    assert render(template, ANA) == ana
    assert template_errors(template) == []


def test_values_are_rendered_as_before_when_present():
    assert render("Hi {{ contact.name }}! Welcome to {{ tenant.name }}.", ANA) == (
        "Hi Ana! Welcome to Acme."
    )
    assert template_variables('{{ vars.a | default: "b" }} {{ vars.c }}') == ["a", "c"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ contact.name | upcase }}", 'only | default: "text"'),
        ('{{ contact.name | default: "" }}', "1 to 100 characters"),
        ('{{ contact.name | default: "a}b" }}', "braces"),
        ("{{ contact.name | default: there }}", "quotes"),
        ('{{ contact.name | default: "' + "x" * 101 + '" }}', "1 to 100"),
        ('{{ contact.name | default: "a" | default: "b" }}', 'only | default: "text"'),
        ('{{ nobody | default: "x" }}', "unknown placeholder"),
    ],
)
def test_anything_else_after_the_name_is_a_validation_error(template, message):
    (error,) = template_errors(template)
    assert message in error


def test_a_flow_with_a_bad_fallback_is_refused_with_its_path():
    document = flow_doc(
        start="hi",
        nodes=[{"id": "hi", "type": "end", "text": "Hi {{ contact.name | upcase }}"}],
    )
    with pytest.raises(FlowValidationError) as raised:
        parse_flow(document)
    (issue,) = raised.value.issues
    assert issue.path == "nodes[0].text"
    assert "default" in issue.message


PIECES = st.sampled_from(
    ["Hi", " ", ",", "!", ".", "\n", "{{ contact.name }}", "{{ vars.a }}", "{{ input }}", "x"]
)


@given(pieces=st.lists(PIECES, max_size=12), name=st.sampled_from(["", "Ana"]))
def test_render_never_raises_and_only_drops_text_around_empty_values(pieces, name):
    template = "".join(pieces)
    context = TemplateContext(contact_name=name, input="hey", variables={"a": "v"})
    rendered = render(template, context)
    naive = template.replace("{{ contact.name }}", name)
    naive = naive.replace("{{ vars.a }}", "v").replace("{{ input }}", "hey")
    if name or "{{ contact.name }}" not in template:
        # nothing is empty: exactly the plain substitution
        assert rendered == naive
    else:
        # something was dropped, and only spaces, punctuation and line breaks
        def letters(text: str) -> str:
            return "".join(ch for ch in text if ch not in " \n,!.")

        assert len(rendered) <= len(naive)
        assert letters(rendered) == letters(naive)


@pytest.mark.django_db
def test_a_contact_without_a_profile_name_is_greeted_without_a_gap(tenant, twilio_channel):
    # given: the example flow greets "Hi {{ contact.name }}! Welcome to {{ tenant.name }}."
    from flows.services import flow_create

    flow_create(tenant=tenant, channel=twilio_channel, definition=example("fitness-welcome"))
    thread = factories.ThreadFactory(channel=twilio_channel, contact__name="")

    # when
    replies = receive(thread, "hello")

    # then
    assert replies[0].text == f"Hi! Welcome to {tenant.name}."


@pytest.mark.parametrize(
    ("template", "variables", "expected"),
    [
        ("{{ contact.name }} {{ vars.a }}", {"a": "?!"}, "?!"),
        ("{{ contact.name }}\n{{ vars.b }} left", {"b": ":) 3"}, ":) 3 left"),
        ("{{ vars.a }} {{ contact.name }}!", {"a": "x,"}, "x,!"),
        ("{{ vars.a }}, {{ contact.name }}.", {"a": "Hi  "}, "Hi  ."),
    ],
)
def test_tidying_never_changes_a_value(template, variables, expected):
    """Only the template's own text around an empty placeholder is tidied: a value (or a
    fallback) next to it keeps its punctuation and spaces."""
    context = TemplateContext(contact_name="", variables=variables)

    assert render(template, context) == expected
