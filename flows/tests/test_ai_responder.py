"""The AI node through the Django side: prompt contents, fallbacks, timeouts, configuration.

No real provider is ever called: the chat model factory is replaced by LangChain fake models.
"""

import threading
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from flows import ai
from flows.models import FlowSession, SessionStatus
from flows.services import flow_create
from flows.tests.support import flow_doc, receive, texts
from tests import factories

pytestmark = pytest.mark.django_db


class RecordingChatModel(BaseChatModel):
    """Answers from a list and records every prompt it was given."""

    answers: list[str]
    prompts: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "recording-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.prompts.append(list(messages))
        answer = self.answers[min(len(self.prompts), len(self.answers)) - 1]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


class FailingChatModel(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "failing-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        raise ConnectionError("provider is down for maria@example.com")


class SlowChatModel(BaseChatModel):
    release: Any

    @property
    def _llm_type(self) -> str:
        return "slow-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.release.wait(10)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="too late"))])


def _ai_flow(**ai_node: Any) -> dict:
    node = {
        "id": "assistant",
        "type": "ai",
        "text": "Ask me anything.",
        "instructions": "Answer questions about {{ vars.topic }}.",
        "max_turns": 2,
        "history_messages": 3,
        "fallback_text": "Sorry, let me find a person.",
        "next": "bye",
        **ai_node,
    }
    nodes = [
        {"id": "topic", "type": "set", "values": {"topic": "memberships"}, "next": "assistant"},
        node,
        {"id": "bye", "type": "end", "text": "Bye!"},
    ]
    if node.get("on_error") == "human":
        nodes.append(
            {"id": "human", "type": "handoff", "text": "A person will help.", "reason": "ai failed"}
        )
    return flow_doc(
        "helper", trigger={"default": True}, language="pt-BR", start="topic", nodes=nodes
    )


@pytest.fixture
def thread(tenant, twilio_channel):
    config = tenant.config
    config.business_description = "Acme Gym, open 6am to 10pm."
    config.target_audience = "Busy professionals"
    config.communication_style = "Warm, short sentences"
    config.save()
    return factories.ThreadFactory(channel=twilio_channel)


@pytest.fixture
def use_model(monkeypatch):
    def install(model: BaseChatModel | None) -> None:
        monkeypatch.setattr(ai, "chat_model_factory", lambda: model)

    return install


def test_prompt_has_config_instructions_language_history_and_reply(
    tenant, twilio_channel, thread, use_model
):
    # given
    model = RecordingChatModel(answers=["We have three plans.", "The gold plan."], prompts=[])
    use_model(model)
    flow_create(tenant=tenant, channel=twilio_channel, definition=_ai_flow())
    assert texts(receive(thread, "hello")) == ["Ask me anything."]

    # when
    first = receive(thread, "What plans do you have?")

    # then the answer goes out as an AI message
    assert texts(first) == ["We have three plans."]
    assert first[0].sender == "ai"
    prompt = model.prompts[0]
    assert isinstance(prompt[0], SystemMessage)
    system = prompt[0].content
    for expected in (
        "Acme Gym, open 6am to 10pm.",
        "Busy professionals",
        "Warm, short sentences",
        "Answer questions about memberships.",
        "pt-BR",
    ):
        assert expected in system
    # history: the thread before this message, oldest first, as human/AI turns; then the reply
    assert [(type(m), m.content) for m in prompt[1:]] == [
        (HumanMessage, "hello"),
        (AIMessage, "Ask me anything."),
        (HumanMessage, "What plans do you have?"),
    ]

    # when the second (last) turn comes
    second = receive(thread, "Which is best?")

    # then history is cut to the last 3 messages and the flow moves on after max_turns
    assert texts(second) == ["The gold plan.", "Bye!"]
    assert [m.content for m in model.prompts[1][1:]] == [
        "Ask me anything.",
        "What plans do you have?",
        "We have three plans.",
        "Which is best?",
    ]
    session = FlowSession.objects.get(thread=thread)
    assert session.status == SessionStatus.COMPLETED


def test_no_history_when_the_node_asks_for_none(
    tenant, twilio_channel, thread, use_model, django_assert_max_num_queries
):
    model = RecordingChatModel(answers=["Sure."], prompts=[])
    use_model(model)
    flow_create(tenant=tenant, channel=twilio_channel, definition=_ai_flow(history_messages=0))
    receive(thread, "hello")

    receive(thread, "question")

    assert [type(m) for m in model.prompts[0]] == [SystemMessage, HumanMessage]


def test_langchain_fake_list_model_works_as_the_model(tenant, twilio_channel, thread, use_model):
    use_model(FakeListChatModel(responses=["Fake answer"]))
    flow_create(tenant=tenant, channel=twilio_channel, definition=_ai_flow())
    receive(thread, "hello")

    assert texts(receive(thread, "hi?")) == ["Fake answer"]


@pytest.mark.parametrize("on_error", [None, "human"])
def test_failing_model_sends_the_fallback_and_never_fails(
    tenant, twilio_channel, thread, use_model, on_error, caplog
):
    use_model(FailingChatModel())
    extra = {"on_error": on_error} if on_error else {}
    flow_create(tenant=tenant, channel=twilio_channel, definition=_ai_flow(**extra))
    receive(thread, "hello")

    replies = receive(thread, "question")

    session = FlowSession.objects.get(thread=thread)
    if on_error:
        assert texts(replies) == ["Sorry, let me find a person.", "A person will help."]
        assert session.handed_off is True
    else:
        assert texts(replies) == ["Sorry, let me find a person."]
        assert session.status == SessionStatus.WAITING
        assert session.current_node == "assistant"
    assert "maria@example.com" not in caplog.text


def test_not_configured_model_sends_the_fallback(tenant, twilio_channel, thread, use_model):
    use_model(None)
    flow_create(tenant=tenant, channel=twilio_channel, definition=_ai_flow())
    receive(thread, "hello")

    assert texts(receive(thread, "question")) == ["Sorry, let me find a person."]


def test_slow_model_times_out_into_the_fallback(
    tenant, twilio_channel, thread, use_model, settings
):
    settings.LLM_TIMEOUT_SECONDS = 0.2
    release = threading.Event()
    use_model(SlowChatModel(release=release))
    flow_create(tenant=tenant, channel=twilio_channel, definition=_ai_flow())
    receive(thread, "hello")
    try:
        replies = receive(thread, "question")
    finally:
        release.set()

    assert texts(replies) == ["Sorry, let me find a person."]
    assert FlowSession.objects.get(thread=thread).status == SessionStatus.WAITING


def test_exit_keyword_leaves_without_calling_the_model(tenant, twilio_channel, thread, use_model):
    model = RecordingChatModel(answers=["unused"], prompts=[])
    use_model(model)
    flow_create(tenant=tenant, channel=twilio_channel, definition=_ai_flow(exit_keywords=["menu"]))
    receive(thread, "hello")

    assert texts(receive(thread, "MENU")) == ["Bye!"]
    assert model.prompts == []


# --- building the configured model -----------------------------------------------------------


def test_settings_build_openai(settings):
    ai._build_chat_model.cache_clear()
    settings.LLM_PROVIDER = "openai"
    settings.LLM_MODEL = ""
    settings.OPENAI_API_KEY = "sk-test"
    settings.LLM_TIMEOUT_SECONDS = 7

    model = ai.build_chat_model_from_settings()

    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "gpt-4o-mini"
    assert model.request_timeout == 7
    assert model.max_retries == ai.MAX_RETRIES


def test_settings_build_google(settings):
    ai._build_chat_model.cache_clear()
    settings.LLM_PROVIDER = "google"
    settings.LLM_MODEL = "gemini-custom"
    settings.GOOGLE_API_KEY = "g-test"
    settings.LLM_TIMEOUT_SECONDS = 9

    model = ai.build_chat_model_from_settings()

    assert isinstance(model, ChatGoogleGenerativeAI)
    assert model.model == "gemini-custom"
    assert model.timeout == 9
    assert model.max_retries == ai.MAX_RETRIES


@pytest.mark.parametrize(
    ("provider", "key"), [("none", "x"), ("openai", ""), ("google", ""), ("bogus", "x")]
)
def test_settings_without_provider_or_key_mean_not_configured(settings, provider, key):
    settings.LLM_PROVIDER = provider
    settings.OPENAI_API_KEY = key
    settings.GOOGLE_API_KEY = key

    assert ai.build_chat_model_from_settings() is None
