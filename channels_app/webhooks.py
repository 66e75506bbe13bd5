"""Provider webhooks: one shared endpoint, and the paths providers own.

The installed providers (`settings.CHANNEL_PROVIDERS`) are asked in turn whether a request to
the shared endpoint (`/api/webhooks/whatsapp`) is theirs (`Provider.accepts`: Twilio posts
forms, the Cloud API JSON); a provider with its own path (`Provider.webhook_path`,
`/api/webhooks/<path>`) gets every request to it. Every request is authenticated by its
provider's signature before anything is stored. The views only hand each parsed message or
status to the conversation services; the flow runs after the response, from a task.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels_app.models import ChannelInstance
from channels_app.providers import (
    ParsedEcho,
    ParsedEdit,
    ParsedStatus,
    ParsedUserIdChange,
    Provider,
    providers,
)
from channels_app.providers.webhook import bad_request, forbidden
from conversations.services.contacts import contact_user_id_change
from conversations.services.inbound import message_echo_record, message_receive
from conversations.services.outbound import message_status_update
from conversations.services.receipts import message_edit_record, messages_read_through
from core import metrics
from core.api_base import api_not_found

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


class _Receiver:
    """Hands a provider's parsed items to the conversation services."""

    def dispatch(self, channel: ChannelInstance, item: Any) -> HttpResponse | None:
        return _dispatch(channel, item)


RECEIVER = _Receiver()


def _handle(provider: Provider | None, request: HttpRequest) -> HttpResponse:
    with metrics.webhook_timer(provider.code if provider else "unknown"):
        if len(request.body) > MAX_BODY_BYTES:
            return bad_request("body too large")
        if provider is None:
            return forbidden("no provider for this request")
        return provider.handle_webhook(request, RECEIVER)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    """`GET`: a verification handshake (the Cloud API's). `POST`: a delivery from whichever
    installed provider accepts it (a Cloud API JSON delivery, a Twilio form post)."""
    installed = list(providers().values())
    if request.method == "GET":
        for provider in installed:
            answer = provider.verify_subscription(request)
            if answer is not None:
                return answer
        return forbidden("verification token mismatch")
    return _handle(next((p for p in installed if p.accepts(request)), None), request)


@csrf_exempt
@require_http_methods(["POST"])
def twilio_webhook(request: HttpRequest) -> HttpResponse:
    """The legacy Twilio-only paths: the same handling as the unified endpoint."""
    return whatsapp_webhook(request)


@csrf_exempt
def provider_webhook(request: HttpRequest, *, name: str) -> HttpResponse:
    """`/api/webhooks/<name>`, the path an installed provider owns (`Provider.webhook_path`):
    `GET` its handshake, `POST` its deliveries. Any other name is the API's JSON 404, as
    before the route existed."""
    provider = next((p for p in providers().values() if p.webhook_path == name), None)
    if provider is None:
        return api_not_found(request)
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    if request.method == "GET":
        return provider.verify_subscription(request) or forbidden("no handshake here")
    return _handle(provider, request)


def _dispatch(channel: ChannelInstance, item: Any) -> HttpResponse | None:
    """Hand one parsed item to its service. A group message is skipped on purpose (logged
    and counted: a flow must never answer a group member in private); a sender without a
    phone number or user id is a bad request."""
    if isinstance(item, ParsedStatus):
        if item.cumulative:
            messages_read_through(channel=channel, status=item)
        else:
            message_status_update(channel=channel, status=item)
        return None
    if isinstance(item, ParsedEdit):
        message_edit_record(channel=channel, edit=item)
        return None
    if isinstance(item, ParsedEcho):
        message_echo_record(channel=channel, echo=item)
        return None
    if isinstance(item, ParsedUserIdChange):
        contact_user_id_change(
            tenant_id=channel.tenant_id,
            previous_user_id=item.previous_user_id,
            user_id=item.user_id,
        )
        return None
    if item.group_id:
        logger.info(
            "group message skipped", extra={"channel_id": str(channel.pk), "kind": item.kind}
        )
        metrics.inbound_skipped(channel.provider, "group")
        return None
    try:
        message_receive(channel=channel, inbound=item)
    except ValueError:
        metrics.inbound_skipped(channel.provider, "no_sender")
        return bad_request("sender has no phone number, WhatsApp user id or Instagram id")
    return None
