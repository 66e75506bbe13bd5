"""A text that renders empty is never sent as an empty WhatsApp message."""

from datetime import UTC, datetime

from flows.engine import InboundMessage, RunContext, parse_flow, start_session


def test_a_message_rendering_empty_is_skipped_and_choices_get_their_labels():
    definition = parse_flow(
        {
            "schema_version": 1,
            "flow_id": "empty",
            "name": "Empty",
            "start": "hello",
            "nodes": [
                {"id": "hello", "type": "message", "text": "{{ vars.unset }}", "next": "ask"},
                {
                    "id": "ask",
                    "type": "question",
                    "text": "{{vars.unset}}",
                    "choices": [
                        {"id": "yes", "label": "Yes", "next": "bye"},
                        {"id": "no", "label": "No", "next": "bye"},
                    ],
                },
                {"id": "bye", "type": "end", "text": "Bye"},
            ],
        }
    )
    result = start_session(
        definition, RunContext(now=datetime(2026, 1, 1, tzinfo=UTC)), InboundMessage(text="hi")
    )
    assert [message.text for message in result.outbound] == ["1. Yes\n2. No"]
