"""The language model is called outside any database transaction, and the conversation is the
same as if it had been called inline."""

from typing import Any

import pytest
from django.db import connection
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from conversations.models import Message
from conversations.services.process import thread_process_inbound
from flows import ai
from flows.services import flow_create
from tests import factories

AI_FLOW = {
    "schema_version": 1,
    "flow_id": "assistant",
    "name": "Assistant",
    "trigger": {"default": True},
    "start": "bot",
    "nodes": [
        {
            "id": "bot",
            "type": "ai",
            "text": "Ask me anything.",
            "instructions": "Answer about the gym.",
            "max_turns": 2,
            "fallback_text": "Sorry, try later.",
            "next": "bye",
        },
        {"id": "bye", "type": "end", "text": "Bye!"},
    ],
}


def watching(model: Any, seen: list[bool]) -> Any:
    """A model factory that records, for each call, whether the caller had a transaction open
    (the model itself runs on a worker thread with a connection of its own)."""

    def factory() -> Any:
        seen.append(connection.in_atomic_block)
        return model

    return factory


def inbound(thread, text):
    return factories.MessageFactory(thread=thread, text=text)


@pytest.mark.django_db(transaction=True)
def test_model_answers_come_from_outside_the_transaction(monkeypatch):
    # given a thread waiting in an AI node, and two questions already stored
    seen: list[bool] = []
    model = FakeListChatModel(responses=["We open at 6am.", "Classes all day."])
    monkeypatch.setattr(ai, "chat_model_factory", watching(model, seen))
    thread = factories.ThreadFactory()
    flow_create(tenant=thread.tenant, channel=thread.channel, definition=AI_FLOW)
    inbound(thread, "hello")
    thread_process_inbound(thread_id=thread.pk)
    inbound(thread, "when do you open?")
    inbound(thread, "and classes?")

    # when both are processed in one run
    handled = thread_process_inbound(thread_id=thread.pk)

    # then the model was asked twice, never inside a transaction, and the replies are in order
    assert handled == 2
    assert seen == [False, False]
    outbound = Message.objects.filter(thread=thread, direction="outbound").order_by("created_at")
    assert [(m.text, m.sender) for m in outbound] == [
        ("Ask me anything.", "flow"),
        ("We open at 6am.", "ai"),
        ("Classes all day.", "ai"),
        ("Bye!", "flow"),
    ]
    assert not Message.objects.filter(
        thread=thread, direction="inbound", processed_at__isnull=True
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_a_failing_model_still_answers_with_the_fallback(monkeypatch):
    def broken():
        raise RuntimeError("provider down")

    monkeypatch.setattr(ai, "chat_model_factory", broken)
    thread = factories.ThreadFactory()
    flow_create(tenant=thread.tenant, channel=thread.channel, definition=AI_FLOW)
    inbound(thread, "hello")
    inbound(thread, "question")

    thread_process_inbound(thread_id=thread.pk)

    outbound = Message.objects.filter(thread=thread, direction="outbound").order_by("created_at")
    assert [m.text for m in outbound] == ["Ask me anything.", "Sorry, try later."]


@pytest.mark.django_db(transaction=True)
def test_the_same_words_twice_are_asked_twice(monkeypatch):
    # given two identical questions waiting in one run
    seen: list[bool] = []
    model = FakeListChatModel(responses=["First answer.", "Second answer."])
    monkeypatch.setattr(ai, "chat_model_factory", watching(model, seen))
    thread = factories.ThreadFactory()
    flow_create(tenant=thread.tenant, channel=thread.channel, definition=AI_FLOW)
    inbound(thread, "hello")
    thread_process_inbound(thread_id=thread.pk)
    inbound(thread, "tell me more")
    inbound(thread, "tell me more")

    # when
    thread_process_inbound(thread_id=thread.pk)

    # then each got its own answer (the history differs between them)
    texts = [
        m.text
        for m in Message.objects.filter(thread=thread, direction="outbound", sender="ai").order_by(
            "created_at"
        )
    ]
    assert texts == ["First answer.", "Second answer."]
    assert seen == [False, False]


@pytest.mark.django_db(transaction=True)
def test_a_burst_longer_than_the_model_rounds_asks_the_model_once_per_message(monkeypatch):
    # given: a conversation at an AI node, then more messages at once than MAX_MODEL_ROUNDS
    import copy

    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from conversations.services.process import MAX_MODEL_ROUNDS
    from flows import ai

    model = FakeListChatModel(responses=[f"answer {n}" for n in range(1, 30)])
    calls = []
    monkeypatch.setattr(ai, "chat_model_factory", lambda: calls.append(1) or model)
    flow = copy.deepcopy(AI_FLOW)
    flow["nodes"][0]["max_turns"] = 20
    thread = factories.ThreadFactory()
    flow_create(tenant=thread.tenant, channel=thread.channel, definition=flow)
    factories.MessageFactory(thread=thread, text="hello")  # answered by the node's greeting
    thread_process_inbound(thread_id=thread.pk)
    assert calls == []
    burst = MAX_MODEL_ROUNDS + 2
    for n in range(burst):
        factories.MessageFactory(thread=thread, text=f"question {n}")

    # when
    handled = thread_process_inbound(thread_id=thread.pk)

    # then: every message answered in order, one model call each
    answers = list(
        Message.objects.filter(thread=thread, sender="ai")
        .order_by("created_at", "id")
        .values_list("text", flat=True)
    )
    assert handled == burst
    assert len(calls) == burst
    assert answers == [f"answer {n}" for n in range(1, burst + 1)]
