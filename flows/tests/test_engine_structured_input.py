"""Input nodes answered by a message's structured content: a shared location, a WhatsApp
Flow's answers. Pure engine tests (no database), then the same through the flow service with
a message stored from a Cloud API webhook."""

from __future__ import annotations

import pytest

from flows.engine import InboundMessage, validate_flow

from .test_engine_runtime import CTX, build, reply, start_session, texts

LOCATION = {"latitude": -23.55, "longitude": -46.63, "name": "Paulista", "address": "Av. Paulista"}


def where(**overrides):
    node = {
        "id": "where",
        "type": "input",
        "text": "Where are you?",
        "save_as": "place",
        "validate": "location",
        "retry_text": "Please share a location.",
        "next": "done",
    }
    node.update(overrides)
    return build(node, {"id": "done", "type": "end", "text": "Got {{ vars.place }}"})


def test_a_shared_location_answers_a_location_input():
    definition = where()
    started = start_session(definition, CTX, InboundMessage("start"))

    result = reply(definition, started, None, kind="location", data=LOCATION)

    assert result.state.variables["place"] == LOCATION
    assert result.state.status == "completed"
    assert texts(result)[0].startswith("Got {")  # an object renders as compact JSON


def test_text_does_not_answer_a_location_input():
    definition = where()
    started = start_session(definition, CTX, InboundMessage("start"))

    result = reply(definition, started, "Av. Paulista 1000")

    assert "place" not in result.state.variables
    assert texts(result) == ["Please share a location."]
    assert result.state.status == "waiting"


def test_a_flow_reply_answers_a_flow_reply_input():
    definition = build(
        {
            "id": "form",
            "type": "input",
            "text": "Fill in the form",
            "save_as": "form",
            "validate": "flow_reply",
            "next": "done",
        },
        {"id": "done", "type": "end", "text": "Thanks"},
    )
    started = start_session(definition, CTX, InboundMessage("start"))
    answers = {"first_name": "Bob", "age": "32"}

    wrong = reply(definition, started, "Sent", kind="location", data=LOCATION)
    assert "form" not in wrong.state.variables
    result = reply(definition, wrong, "Sent", kind="flow_reply", data=answers)

    assert result.state.variables["form"] == answers
    assert texts(result) == ["Thanks"]


def test_an_empty_flow_reply_is_not_an_answer():
    definition = where(validate="flow_reply", retry_text=None)
    started = start_session(definition, CTX, InboundMessage("start"))
    result = reply(definition, started, "Sent", kind="flow_reply", data={})
    assert "place" not in result.state.variables


def test_any_still_takes_text_only():
    definition = where(validate="any")
    started = start_session(definition, CTX, InboundMessage("start"))
    result = reply(definition, started, None, kind="location", data=LOCATION)
    assert "place" not in result.state.variables


@pytest.mark.parametrize("rule", ["location", "flow_reply"])
def test_the_new_rules_validate(rule):
    document = {
        "schema_version": 1,
        "flow_id": "x",
        "name": "X",
        "start": "a",
        "nodes": [
            {
                "id": "a",
                "type": "input",
                "text": "?",
                "save_as": "v",
                "validate": rule,
                "next": "b",
            },
            {"id": "b", "type": "end"},
        ],
    }
    assert validate_flow(document) == []


def test_an_unknown_rule_names_the_new_ones():
    document = {
        "schema_version": 1,
        "flow_id": "x",
        "name": "X",
        "start": "a",
        "nodes": [
            {
                "id": "a",
                "type": "input",
                "text": "?",
                "save_as": "v",
                "validate": "gps",
                "next": "b",
            },
            {"id": "b", "type": "end"},
        ],
    }
    (issue,) = validate_flow(document)
    assert issue.path == "nodes[0].validate"
    assert "'location' or 'flow_reply'" in issue.message


def test_inbound_message_defaults_keep_old_callers_working():
    message = InboundMessage("hi")
    assert (message.kind, message.data) == ("text", None)
