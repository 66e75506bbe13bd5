"""chatai's Prometheus metrics and the protected `/metrics` endpoint.

The instruments live in prometheus_client's default registry next to django-prometheus's own
(requests, database, cache). Call the small functions below from the code paths; they never
raise, so instrumentation cannot break a webhook. Labels are low-cardinality by construction:
provider names, directions, outcomes and error reasons, never ids, phones or texts.

`/metrics` answers only to `Authorization: Bearer <METRICS_TOKEN>` or a staff session; anyone
else gets 403 (with no token configured, only staff sessions can read it).
"""

import hmac
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

MESSAGES = Counter(
    "chatai_messages_total",
    "WhatsApp messages stored, by direction (inbound received, outbound queued, echo: sent "
    "from the WhatsApp Business app).",
    ["direction"],
)
WEBHOOK_LATENCY = Histogram(
    "chatai_webhook_latency_seconds",
    "Time to answer a provider webhook, by provider.",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SEND_FAILURES = Counter(
    "chatai_send_failures_total",
    "Outbound messages the provider refused or that could not reach it.",
    ["provider", "reason"],
)
INBOUND_SKIPPED = Counter(
    "chatai_inbound_skipped_total",
    "Provider deliveries deliberately not stored or not answered, by provider and reason "
    "(group, no_sender, not_whatsapp, system, malformed).",
    ["provider", "reason"],
)
FLOW_OUTCOMES = Counter(
    "chatai_flow_outcomes_total",
    "Flow sessions that ended, by outcome (completed, handed_off, expired, failed, interrupted).",
    ["outcome"],
)

_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
_LONG_NUMBER = re.compile(r"\d{7,}")


def _label(value: object) -> str:
    """The value when it looks like a code ("twilio", "131047", "ConnectionError"), else "other".

    Anything else (free text, something phone-like) collapses to "other", so a careless
    caller can neither leak PII into a label nor create unbounded series.
    """
    text = str(value or "unknown")
    if not _LABEL.match(text) or _LONG_NUMBER.search(text):
        return "other"
    return text


def _safe(update: Callable[[], object]) -> None:
    try:
        update()
    except Exception:  # noqa: BLE001 - metrics must never break the caller
        logger.warning("metrics update failed", exc_info=False)


def _on_commit(update: Callable[[], object]) -> None:
    """Count work once its transaction commits (now, outside one): rolled-back work, such as
    a webhook retried after a database error, is not counted twice."""
    try:
        transaction.on_commit(lambda: _safe(update))
    except Exception:  # noqa: BLE001
        _safe(update)


def message_received(provider: str = "") -> None:
    """An inbound message was stored (call once per new message, not for duplicates)."""
    _on_commit(lambda: MESSAGES.labels(direction="inbound").inc())


def inbound_skipped(provider: str, reason: str) -> None:
    """A delivery was deliberately skipped (or stored without an answer, for `group`);
    `reason` is one of a fixed set of words, never provider text."""
    _safe(lambda: INBOUND_SKIPPED.labels(provider=_label(provider), reason=_label(reason)).inc())


def message_echoed() -> None:
    """A message the business sent from the WhatsApp Business app was recorded."""
    _on_commit(lambda: MESSAGES.labels(direction="echo").inc())


def message_queued(count: int = 1) -> None:
    """`count` outbound messages were stored for sending."""
    if count > 0:
        _on_commit(lambda: MESSAGES.labels(direction="outbound").inc(count))


def send_failed(provider: str, reason: str) -> None:
    """A send attempt failed; `reason` is an error code or class, never provider text."""
    _on_commit(lambda: SEND_FAILURES.labels(provider=_label(provider), reason=_label(reason)).inc())


def flow_outcome(outcome: str) -> None:
    """A flow session ended with `outcome`."""
    _on_commit(lambda: FLOW_OUTCOMES.labels(outcome=_label(outcome)).inc())


def webhook_observed(provider: str, seconds: float) -> None:
    _safe(lambda: WEBHOOK_LATENCY.labels(provider=_label(provider)).observe(max(seconds, 0.0)))


@contextmanager
def webhook_timer(provider: str = "unknown") -> Iterator[dict[str, str]]:
    """Time a webhook; the caller may set `timer["provider"]` once it knows the provider."""
    timer = {"provider": provider}
    started = time.perf_counter()
    try:
        yield timer
    finally:
        webhook_observed(timer["provider"], time.perf_counter() - started)


# --- The endpoint's token (the view is chatai.views.metrics: staff sessions are a tenants matter)


def bearer_token_valid(request: HttpRequest) -> bool:
    """Whether the request carries `Authorization: Bearer <METRICS_TOKEN>` (constant time)."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if not token or scheme.lower() != "bearer" or not presented:
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())
