"""Webhooks to a tenant's own systems: endpoints, events, deliveries and their attempts.

- `event_publish` records one delivery per active endpoint of the tenant subscribed to the
  event and schedules sending after commit. It never raises: the pipeline that calls it
  (a message stored, a status applied, a flow finished) goes on whatever happens here.
- `delivery_attempt` sends one attempt of a delivery (claimed first, so two workers never make
  the same attempt), logs it as a `WebhookAttempt` row and schedules the next one with
  exponential backoff until 24 hours after the event. An endpoint whose attempts all failed for
  24 hours is switched off, with its reason, until someone switches it on again.
- `deliveries_due_send` (the periodic job) makes every due attempt.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import requests
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.context import tenant_bound
from core.outbound_http import UnsafeDestination, destination_check, pinned_session
from core.tasks import enqueue_on_commit
from integrations.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from integrations.signing import SIGNATURE_HEADER, secret_generate, signature_header

logger = logging.getLogger(__name__)

RETRY_FOR = timedelta(hours=24)
DISABLE_AFTER = timedelta(hours=24)
FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 2 * 60 * 60
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
LEASE = timedelta(minutes=2)  # longer than one attempt can take
SNIPPET_CHARS = 200
DUE_BATCH = 200
USER_AGENT = "chatai-webhooks/1"

EVENTS = list(WebhookEvent.values)


# --- Subscriptions, remembered --------------------------------------------------------------

SUBSCRIPTIONS_TTL = 60  # seconds; changes through the services below forget it at once


def _subscriptions_key(tenant_id: object) -> str:
    return f"webhooks:subs:{tenant_id}"


def subscriptions(tenant_id: object) -> dict[str, list[str]]:
    """Event -> ids of the tenant's active endpoints that want it; remembered in the cache
    so that the pipeline pays no query for a tenant without webhooks. Stale for at most
    SUBSCRIPTIONS_TTL in another process without a shared cache (a delivery for an
    endpoint switched off meanwhile is given up when its attempt finds it off)."""
    key = _subscriptions_key(tenant_id)
    found = cache.get(key)
    if found is not None:
        return dict(found)
    by_event: dict[str, list[str]] = {}
    for pk, events in WebhookEndpoint.objects.filter(
        tenant_id=tenant_id, is_active=True
    ).values_list("pk", "events"):
        for event in events or []:
            by_event.setdefault(event, []).append(str(pk))
    cache.set(key, by_event, SUBSCRIPTIONS_TTL)
    return by_event


def subscriptions_forget(tenant_id: object) -> None:
    """Forget the remembered subscriptions now and again after commit (a reader between the
    two could remember the old rows)."""
    key = _subscriptions_key(tenant_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


# --- Endpoints -------------------------------------------------------------------------------


def webhook_url_validate(url: str) -> None:
    """ValidationError on `url` unless it is https on public addresses (see
    `core.outbound_http`; checked again at every send)."""
    try:
        destination_check(url)
    except UnsafeDestination as exc:
        raise ValidationError({"url": str(exc)}) from exc


def webhook_events_validate(events: object) -> list[str]:
    """The distinct known event names of `events`, in the canonical order."""
    if not isinstance(events, list) or not events:
        raise ValidationError({"events": "List at least one event."})
    unknown = [str(e) for e in events if e not in EVENTS]
    if unknown:
        raise ValidationError(
            {"events": f"Unknown events: {', '.join(unknown)}. Known: {', '.join(EVENTS)}."}
        )
    return [e for e in EVENTS if e in events]


@transaction.atomic
def webhook_endpoint_create(
    *, tenant: Any, url: str, events: list[str], is_active: bool = True, description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once; stored encrypted)."""
    webhook_url_validate(url)
    secret = secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant,
        url=url,
        events=webhook_events_validate(events),
        is_active=is_active,
        description=description,
        secret=secret,
    )
    subscriptions_forget(tenant.pk)
    logger.info("webhook endpoint created", extra={"endpoint_id": str(endpoint.pk)})
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(*, endpoint: WebhookEndpoint, data: dict[str, Any]) -> WebhookEndpoint:
    """Change `url`, `events`, `description` and/or `is_active`. Switching an endpoint on
    clears its switch-off and failure record (it gets a fresh day)."""
    changed: list[str] = []
    if "url" in data and data["url"] != endpoint.url:
        webhook_url_validate(data["url"])
        endpoint.url = data["url"]
        changed.append("url")
    if "events" in data:
        endpoint.events = webhook_events_validate(data["events"])
        changed.append("events")
    if "description" in data:
        endpoint.description = data["description"]
        changed.append("description")
    if "is_active" in data and bool(data["is_active"]) != endpoint.is_active:
        endpoint.is_active = bool(data["is_active"])
        changed.append("is_active")
        if endpoint.is_active:
            endpoint.disabled_at = None
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
            changed += ["disabled_at", "disabled_reason", "failing_since"]
    if changed:
        endpoint.save(update_fields=[*changed, "updated_at"])
        subscriptions_forget(endpoint.tenant_id)
    return endpoint


@transaction.atomic
def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new secret replaces the old one at once (returned once); deliveries from now on,
    retries included, are signed with it."""
    secret = secret_generate()
    endpoint.secret = secret
    endpoint.save(update_fields=["secret", "updated_at"])
    logger.info("webhook secret rotated", extra={"endpoint_id": str(endpoint.pk)})
    return secret


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Soft-delete the endpoint; its pending deliveries are given up."""
    endpoint.soft_delete()
    subscriptions_forget(endpoint.tenant_id)
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="endpoint_deleted"
    )


# --- Events ----------------------------------------------------------------------------------

EventData = dict[str, Any] | Callable[[], dict[str, Any]]


def event_publish(*, tenant_id: object, event: str, data: EventData) -> int:
    """Record `event` for every active endpoint of the tenant subscribed to it, and send after
    commit; returns how many deliveries were recorded.

    `data` is the event's `data` object, or a function building it (called only when some
    endpoint wants the event; otherwise the pipeline pays one cache read). Never
    raises: an error is logged (its type only) and the caller carries on. Call inside the
    transaction that makes the event happen: a rollback takes the deliveries with it.
    """
    try:
        endpoint_ids = subscriptions(tenant_id).get(event)
        if not endpoint_ids:
            return 0
        with transaction.atomic():
            payload = data() if callable(data) else data
            contact_id = payload.get("contact_id") or (payload.get("thread") or {}).get(
                "contact_id"
            )
            now = timezone.now()
            event_id = uuid.uuid4()
            deliveries = WebhookDelivery.objects.bulk_create(
                [
                    WebhookDelivery(
                        tenant_id=tenant_id,
                        endpoint_id=endpoint_id,
                        event_id=event_id,
                        event=event,
                        occurred_at=now,
                        payload=payload,
                        contact_id=contact_id,
                        next_attempt_at=now,
                        give_up_at=now + RETRY_FOR,
                    )
                    for endpoint_id in endpoint_ids
                ]
            )
    except Exception as exc:  # noqa: BLE001 - the pipeline must never fail because of a webhook
        logger.error(
            "webhook event not recorded", extra={"event": event, "error": type(exc).__name__}
        )
        return 0
    from integrations import tasks

    for delivery in deliveries:
        enqueue_on_commit(tasks.send_webhook, str(delivery.pk))
    return len(deliveries)


# --- Sending ---------------------------------------------------------------------------------

_session: requests.Session | None = None


def _http() -> requests.Session:
    """One pinned session per process (connections to an endpoint are reused)."""
    global _session
    if _session is None:
        _session = pinned_session()
    return _session


def retry_delay(attempt: int) -> timedelta:
    """The wait after failed attempt number `attempt` (1, 2, ...): 1 min, 2, 4, 8, ... min,
    at most 2 hours; the last attempt is made 24 hours after the event, then no more."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_SECONDS))


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The exact bytes sent (and signed): `{"id", "event", "created_at", "data"}`."""
    body = {
        "id": str(delivery.event_id),
        "event": delivery.event,
        "created_at": delivery.occurred_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _claim(delivery_id: object, now: datetime) -> bool:
    """Take the delivery's next attempt (a conditional update: one taker per attempt)."""
    return (
        WebhookDelivery.objects.filter(
            pk=delivery_id,
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=now,
        ).update(next_attempt_at=now + LEASE, attempts=F("attempts") + 1, updated_at=now)
        == 1
    )


class _Outcome:
    def __init__(self) -> None:
        self.status_code: int | None = None
        self.error = ""
        self.snippet = ""
        self.duration_ms = 0

    @property
    def succeeded(self) -> bool:
        return self.error == "" and self.status_code is not None and 200 <= self.status_code < 300


def _post(url: str, *, body: bytes, secret: str, event: str, event_id: str) -> _Outcome:
    outcome = _Outcome()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secret=secret, timestamp=timestamp, body=body),
        "X-Chatai-Event": event,
        "X-Chatai-Delivery": event_id,
    }
    started = time.monotonic()
    try:
        response = _http().post(
            url,
            data=body,
            headers=headers,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            allow_redirects=False,
            stream=True,
        )
        try:
            outcome.status_code = response.status_code
            chunk = next(response.iter_content(SNIPPET_CHARS), b"")
            outcome.snippet = chunk.decode("utf-8", "replace")[:SNIPPET_CHARS]
        finally:
            response.close()
        if 300 <= response.status_code < 400:
            outcome.error = "redirect"  # never followed: it could lead anywhere
        elif not 200 <= response.status_code < 300:
            outcome.error = "http_status"
    except UnsafeDestination as exc:
        outcome.error = exc.code
    except requests.Timeout:
        outcome.error = "timeout"
    except requests.exceptions.SSLError:
        outcome.error = "tls"
    except (requests.ConnectionError, OSError):
        outcome.error = "connection"
    except Exception as exc:  # noqa: BLE001 - any other failure is a failed attempt
        outcome.error = type(exc).__name__[:64]
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


def delivery_attempt(*, delivery_id: object) -> str:
    """Make the delivery's next attempt if it is due and nobody else is making it.

    Returns "succeeded", "retry" (failed; the next attempt is scheduled), "failed" (failed
    and given up: 24 hours passed, or its endpoint is off or gone) or "skipped" (not due,
    not pending, or taken by another worker). The HTTP request runs outside any transaction.
    """
    now = timezone.now()
    if not _claim(delivery_id, now):
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    with tenant_bound(delivery.tenant_id):
        if endpoint.deleted_at is not None or not endpoint.is_active:
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                status=DeliveryStatus.FAILED,
                next_attempt_at=None,
                attempts=F("attempts") - 1,
                last_error="endpoint_off",
            )
            return "failed"
        outcome = _post(
            endpoint.url,
            body=delivery_body(delivery),
            secret=endpoint.secret,
            event=delivery.event,
            event_id=str(delivery.event_id),
        )
        return _record(delivery, outcome)


@transaction.atomic
def _record(delivery: WebhookDelivery, outcome: _Outcome) -> str:
    now = timezone.now()
    endpoint = WebhookEndpoint.all_objects.select_for_update().get(pk=delivery.endpoint_id)
    WebhookAttempt.objects.create(
        tenant_id=delivery.tenant_id,
        delivery_id=delivery.pk,
        number=delivery.attempts,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        response_snippet=outcome.snippet,
        succeeded=outcome.succeeded,
    )
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error
    log_extra = {
        "delivery_id": str(delivery.pk),
        "endpoint_id": str(endpoint.pk),
        "attempt": delivery.attempts,
        "status_code": outcome.status_code,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
    }
    if outcome.succeeded:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        endpoint.last_success_at = now
        endpoint.failing_since = None
        result = "succeeded"
        logger.info("webhook delivered", extra=log_extra)
    else:
        endpoint.last_failure_at = now
        endpoint.failing_since = endpoint.failing_since or now
        next_at = now + retry_delay(delivery.attempts)
        if next_at > delivery.give_up_at and now < delivery.give_up_at:
            next_at = delivery.give_up_at  # one last attempt at the 24-hour mark
        if next_at > delivery.give_up_at or now >= delivery.give_up_at:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            result = "failed"
        else:
            delivery.next_attempt_at = next_at
            result = "retry"
        logger.warning("webhook attempt failed", extra={**log_extra, "outcome": result})
        if endpoint.is_active and now - endpoint.failing_since >= DISABLE_AFTER:
            _switch_off(endpoint, now=now, outcome=outcome)
            if delivery.status == DeliveryStatus.PENDING:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
                result = "failed"
    delivery.save(
        update_fields=[
            "status",
            "delivered_at",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "updated_at",
        ]
    )
    endpoint.save(
        update_fields=[
            "is_active",
            "failing_since",
            "last_success_at",
            "last_failure_at",
            "disabled_at",
            "disabled_reason",
            "updated_at",
        ]
    )
    return result


def _switch_off(endpoint: WebhookEndpoint, *, now: datetime, outcome: _Outcome) -> None:
    """Requires the endpoint's row lock. Its other pending deliveries are given up too."""
    last = f"HTTP {outcome.status_code}" if outcome.status_code else outcome.error
    since = endpoint.failing_since or now
    endpoint.is_active = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"Switched off: every delivery failed for 24 hours (since "
        f"{since.strftime('%Y-%m-%d %H:%M UTC')}; last: {last}). Fix the receiver, then switch "
        "the endpoint on again."
    )[:500]
    WebhookDelivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="endpoint_switched_off"
    )
    subscriptions_forget(endpoint.tenant_id)
    logger.warning("webhook endpoint switched off", extra={"endpoint_id": str(endpoint.pk)})


def deliveries_due(*, now: datetime | None = None, limit: int = DUE_BATCH) -> list[object]:
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def deliveries_due_send(*, limit: int = DUE_BATCH) -> dict[str, int]:
    """Make every due attempt (the periodic job); counts of the outcomes."""
    counts: dict[str, int] = {}
    for delivery_id in deliveries_due(limit=limit):
        try:
            outcome = delivery_attempt(delivery_id=delivery_id)
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop the others
            logger.error(
                "webhook attempt raised",
                extra={"delivery_id": str(delivery_id), "error": type(exc).__name__},
            )
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


class ReplayRefused(Exception):
    """The delivery cannot be sent again now (its endpoint is off); the message says why."""


@transaction.atomic
def delivery_replay(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same event (same `id`, new signature) again now, with a fresh 24 hours of
    retries; works for delivered and failed deliveries alike. Raises ReplayRefused when the
    endpoint is switched off."""
    locked = (
        WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
    )
    if not locked.endpoint.is_active or locked.endpoint.deleted_at is not None:
        raise ReplayRefused("The endpoint is switched off; switch it on to send again.")
    now = timezone.now()
    locked.status = DeliveryStatus.PENDING
    locked.next_attempt_at = now
    locked.give_up_at = now + RETRY_FOR
    locked.delivered_at = None
    locked.save(
        update_fields=["status", "next_attempt_at", "give_up_at", "delivered_at", "updated_at"]
    )
    from integrations import tasks

    enqueue_on_commit(tasks.send_webhook, str(locked.pk))
    logger.info("webhook delivery replayed", extra={"delivery_id": str(locked.pk)})
    return locked


def webhook_deliveries_erase_contact(*, contact_id: object) -> int:
    """Empty the payloads of the deliveries about the contact (their `data` may hold a
    message's text) and give up the pending ones; returns how many were changed. Part of a
    contact's erasure: call inside its transaction."""
    now = timezone.now()
    deliveries = WebhookDelivery.objects.filter(contact_id=contact_id)
    deliveries.filter(status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, last_error="contact_erased"
    )
    return deliveries.update(payload={}, updated_at=now)


def endpoints_switched_off(*, tenant_ids: Iterable[object] | None) -> int:
    """How many live endpoints were switched off for failing (None: every tenant)."""
    queryset = WebhookEndpoint.objects.filter(is_active=False, disabled_at__isnull=False)
    if tenant_ids is not None:
        queryset = queryset.filter(tenant_id__in=list(tenant_ids))
    return queryset.count()
