"""The language model behind `ai` flow nodes, provider-agnostic through LangChain.

`chat_model_factory()` builds the configured chat model (or returns None when `LLM_PROVIDER`
is `none` or the provider's key is missing). Tests replace it with a LangChain fake chat model
(`monkeypatch.setattr(flows.ai, "chat_model_factory", lambda: fake)`); nothing here calls a
real provider unless settings name one and give it a key.

`ThreadResponder` implements the engine's `AIResponder` for one thread: it builds the prompt
(tenant project config, node instructions, flow language, recent thread history, the reply),
calls the model under a hard deadline and raises `AIError` on any failure, so the engine sends
the node's `fallback_text` and the webhook never fails because of the model.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from flows.engine import AIAnswerNeeded, AIError, AIRequest

logger = logging.getLogger(__name__)

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "google": "gemini-2.0-flash"}
MAX_RETRIES = 1
MAX_HISTORY_CHARS = 2000  # per history message, so one long message cannot crowd the prompt

# Model calls run on this pool so that the caller can stop waiting at the deadline even when a
# provider client ignores its own timeout. A call that overruns keeps its worker until the
# client gives up; with every worker busy, new calls wait and time out, i.e. degrade to the
# fallback text instead of piling up threads.
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="llm")


@functools.lru_cache(maxsize=4)
def _build_chat_model(
    provider: str, model: str, api_key: str, timeout: float
) -> BaseChatModel | None:
    if provider == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=model or DEFAULT_MODELS["openai"],
            api_key=api_key,
            timeout=timeout,
            max_retries=MAX_RETRIES,
        )
    if provider == "google":
        from langchain_google_genai import ChatGoogleGenerativeAI

        return ChatGoogleGenerativeAI(
            model=model or DEFAULT_MODELS["google"],
            api_key=api_key,
            timeout=timeout,
            max_retries=MAX_RETRIES,
        )
    return None


def build_chat_model_from_settings() -> BaseChatModel | None:
    """The chat model named by `LLM_PROVIDER`/`LLM_MODEL`, or None when not configured."""
    provider = (settings.LLM_PROVIDER or "none").lower()
    keys = {"openai": settings.OPENAI_API_KEY, "google": settings.GOOGLE_API_KEY}
    if provider not in keys:
        return None
    if not keys[provider]:
        logger.warning("llm provider has no api key", extra={"provider": provider})
        return None
    return _build_chat_model(
        provider, settings.LLM_MODEL, keys[provider], float(settings.LLM_TIMEOUT_SECONDS)
    )


# The hook tests override. Returns the chat model to use, or None when not configured.
chat_model_factory: Callable[[], BaseChatModel | None] = build_chat_model_from_settings


def llm_configured() -> bool:
    """True when a chat model is available (used by /readyz)."""
    try:
        return chat_model_factory() is not None
    except Exception:  # noqa: BLE001 - a broken configuration is "not configured"
        return False


def system_prompt(*, config: Any, instructions: str, language: str) -> str:
    """The system message: who the business is, for whom, in which voice, and the task."""
    parts = [
        "You are the WhatsApp assistant of a business, answering its customers.",
    ]
    description = (getattr(config, "business_description", "") or "").strip()
    audience = (getattr(config, "target_audience", "") or "").strip()
    style = (getattr(config, "communication_style", "") or "").strip()
    if description:
        parts.append(f"About the business: {description}")
    if audience:
        parts.append(f"Target audience: {audience}")
    if style:
        parts.append(f"Communication style: {style}")
    parts.append(f"Your task: {instructions.strip()}")
    parts.append(
        f"Reply in the language with the BCP-47 tag '{language}', as plain text suitable for "
        "WhatsApp (no markdown tables, no HTML), briefly. If you do not know something, say so "
        "and offer to connect the customer with a person; never invent prices or facts."
    )
    return "\n".join(parts)


class ThreadResponder:
    """The engine's `AIResponder` for one thread and one inbound message.

    `history` is a callable returning the thread's messages before the current inbound one,
    oldest first, as (direction, text) pairs, at most `limit` of them; it is only called when the
    node asks for history. Every failure (not configured, provider error, timeout, empty
    answer) raises `AIError`, never anything else.
    """

    def __init__(
        self,
        *,
        config: Any,
        history: Callable[[int], list[tuple[str, str]]],
        log_extra: dict[str, Any] | None = None,
        answers: dict[tuple[Any, ...], str | AIError] | None = None,
        scope: object = None,
    ) -> None:
        self._config = config
        self._history = history
        self._log_extra = dict(log_extra or {})
        self._answers = answers
        self._scope = scope

    def messages(self, request: AIRequest) -> list[BaseMessage]:
        """The prompt for `request`: system, history (oldest first), then the reply."""
        prompt: list[BaseMessage] = [
            SystemMessage(
                content=system_prompt(
                    config=self._config,
                    instructions=request.instructions,
                    language=request.language,
                )
            )
        ]
        if request.history_messages > 0:
            for direction, text in self._history(request.history_messages):
                text = (text or "").strip()[:MAX_HISTORY_CHARS]
                if not text:
                    continue
                if direction == "inbound":
                    prompt.append(HumanMessage(content=text))
                else:
                    prompt.append(AIMessage(content=text))
        prompt.append(HumanMessage(content=request.reply))
        return prompt

    def __call__(self, request: AIRequest) -> str:
        """The model's answer to `request`.

        With `answers` the model is not called here: a known answer (or its recorded AIError)
        is returned, and an unknown one raises AIAnswerNeeded whose payload is a `PendingAnswer`
        (the key to store the answer under, and the prompt), for the caller to obtain with
        `answer_needed` outside its transaction and run the step again. Keys are scoped (to
        the inbound message), so the same words later in the conversation are asked afresh.
        """
        if self._answers is not None:
            key = (self._scope, *answer_key(request))
            known = self._answers.get(key, _MISSING)
            if isinstance(known, AIError):
                raise known
            if isinstance(known, str):
                return known
            raise AIAnswerNeeded(request, payload=PendingAnswer(key, self.messages(request)))
        return invoke_model(request, self.messages(request), log_extra=self._log_extra)


_MISSING = object()


@dataclass(frozen=True)
class PendingAnswer:
    """What a suspended step needs: where to store the answer, and the prompt to send."""

    key: tuple[Any, ...]
    prompt: list[BaseMessage]


def answer_key(request: AIRequest) -> tuple[Any, ...]:
    """What makes two requests the same question to the model."""
    return (
        request.node_id,
        request.instructions,
        request.language,
        request.history_messages,
        request.reply,
    )


def answer_needed(
    needed: AIAnswerNeeded, *, log_extra: dict[str, Any] | None = None
) -> tuple[tuple[Any, ...], str | AIError]:
    """Call the model for a step suspended by a ThreadResponder (outside any transaction);
    return the key to store the outcome under and the answer or its AIError (a model failure
    is returned, never raised)."""
    pending = needed.payload
    if not isinstance(pending, PendingAnswer):
        raise TypeError("AIAnswerNeeded was not raised by a ThreadResponder")
    try:
        return pending.key, invoke_model(needed.request, pending.prompt, log_extra=log_extra or {})
    except AIError as exc:
        return pending.key, exc


def invoke_model(request: AIRequest, prompt: Any, *, log_extra: dict[str, Any]) -> str:
    """The configured chat model's answer to `prompt`, within LLM_TIMEOUT_SECONDS.

    Every failure (not configured, provider error, timeout, empty answer) raises AIError.
    """
    try:
        model = chat_model_factory()
    except Exception as exc:
        _log("llm factory failed", request, exc, log_extra)
        raise AIError("the language model could not be built") from exc
    if model is None:
        raise AIError("no language model is configured")
    timeout = float(settings.LLM_TIMEOUT_SECONDS)
    future = _executor.submit(model.invoke, prompt)
    try:
        result = future.result(timeout=timeout)
    except FutureTimeout as exc:
        future.cancel()
        _log("llm call timed out", request, exc, log_extra)
        raise AIError(f"the model did not answer within {timeout:g} seconds") from exc
    except Exception as exc:
        _log("llm call failed", request, exc, log_extra)
        raise AIError(f"the model call failed: {type(exc).__name__}") from exc
    text = _content_text(getattr(result, "content", result))
    if not text.strip():
        raise AIError("the model returned an empty answer")
    return text


def _log(message: str, request: AIRequest, exc: BaseException, log_extra: dict[str, Any]) -> None:
    # The exception text may echo the prompt: only its type is logged.
    logger.warning(
        message, extra={**log_extra, "node_id": request.node_id, "error": type(exc).__name__}
    )


def _content_text(content: Any) -> str:
    """A chat model's content as plain text (a string, or a list of text blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return ""
