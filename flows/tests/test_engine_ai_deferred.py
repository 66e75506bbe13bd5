"""A responder may suspend a step to answer outside the caller's transaction."""

from datetime import UTC, datetime

import pytest

from flows.engine import (
    AIAnswerNeeded,
    InboundMessage,
    RunContext,
    parse_flow,
    resume_session,
    start_session,
)

FLOW = {
    "schema_version": 1,
    "flow_id": "ask",
    "name": "Ask",
    "start": "bot",
    "nodes": [
        {
            "id": "bot",
            "type": "ai",
            "instructions": "Answer about {{ tenant.name }}",
            "fallback_text": "Sorry",
        }
    ],
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_step_is_abandoned_and_replayed_with_the_answer():
    definition = parse_flow(FLOW)
    waiting = start_session(definition, RunContext(now=NOW), InboundMessage(text="hi")).state
    before = waiting.to_dict()

    def later(request):
        raise AIAnswerNeeded(request, payload="prompt")

    with pytest.raises(AIAnswerNeeded) as excinfo:
        resume_session(
            definition, waiting, RunContext(now=NOW, ai=later), InboundMessage(text="prices?")
        )
    assert excinfo.value.request.reply == "prices?"
    assert excinfo.value.payload == "prompt"
    assert waiting.to_dict() == before  # nothing of the abandoned step stuck

    result = resume_session(
        definition,
        waiting,
        RunContext(now=NOW, ai=lambda request: "From 39/month."),
        InboundMessage(text="prices?"),
    )
    assert [(m.text, m.sender) for m in result.outbound] == [("From 39/month.", "ai")]
