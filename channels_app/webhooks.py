"""Provider webhooks: one endpoint for Twilio form posts and Cloud API JSON posts.

Every request is authenticated by its provider's signature before anything is stored. The
views only check, parse and hand each message or status to the conversation services; the
flow runs after the response, from a task.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels_app.models import ChannelInstance
from channels_app.providers import (
    ParsedEcho,
    ParsedInbound,
    ParsedStatus,
    ParsedUserIdChange,
    cloud_api,
    twilio,
)
from channels_app.selectors import channel_for_twilio, channels_for_cloud_api
from conversations.services.contacts import contact_user_id_change
from conversations.services.inbound import message_echo_record, message_receive
from conversations.services.outbound import message_status_update
from core import metrics
from core.context import tenant_bound
from core.storable import clean

logger = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_BODY_BYTES = 1024 * 1024
# Distinct phone numbers an unsigned-by-the-platform body may name (tenant-signed bodies).
MAX_TENANT_SIGNED_NUMBERS = 100


def _twiml() -> HttpResponse:
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


def _forbidden(reason: str) -> HttpResponse:
    logger.warning("webhook refused", extra={"reason": reason})
    return HttpResponse("Forbidden", status=403, content_type="text/plain")


def _bad_request(reason: str) -> HttpResponse:
    logger.warning("webhook body rejected", extra={"reason": reason})
    return HttpResponse(f"Bad request: {reason}", status=400, content_type="text/plain")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    """`GET`: the Cloud API verification handshake. `POST`: a Cloud API JSON delivery or a
    Twilio form post (incoming message or status callback)."""
    if request.method == "GET":
        return _verify_subscription(request)
    is_json = request.content_type == "application/json"
    with metrics.webhook_timer("cloud_api" if is_json else "twilio"):
        if len(request.body) > MAX_BODY_BYTES:
            return _bad_request("body too large")
        if is_json:
            return _cloud_api(request)
        return _twilio(request)


@csrf_exempt
@require_http_methods(["POST"])
def twilio_webhook(request: HttpRequest) -> HttpResponse:
    """The legacy Twilio-only paths: the same handling as the unified endpoint."""
    return whatsapp_webhook(request)


def _verify_subscription(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    expected = settings.META_VERIFY_TOKEN
    if mode == "subscribe" and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return HttpResponse(challenge, content_type="text/plain")
    return _forbidden("verification token mismatch")


def _twilio(request: HttpRequest) -> HttpResponse:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return _forbidden("missing twilio signature")
    params = request.POST
    cleaned = {key: clean(value) for key, value in params.items()}
    ours, _theirs = twilio.channel_identifiers(cleaned)
    if ours and not twilio.is_whatsapp_address(ours):
        # An SMS to a channel's number names it without the prefix: found, so that its
        # signature is checked with the channel's token and the refusal is a clear 400.
        ours = f"{twilio.WHATSAPP_PREFIX}{ours.strip()}"
    channel = channel_for_twilio(identifier=ours) if ours else None
    # From here on the channel's tenant is in the log lines (a refused signature too: that is
    # how a tenant's wrong auth token shows up); before, and for an unknown number, none.
    with tenant_bound(channel.tenant_id if channel else None):
        return _twilio_for_channel(request, channel, params=params, cleaned=cleaned)


def _twilio_for_channel(
    request: HttpRequest,
    channel: ChannelInstance | None,
    *,
    params: QueryDict,
    cleaned: dict[str, str],
) -> HttpResponse:
    signature = request.headers.get("X-Twilio-Signature", "")
    url = f"{settings.PUBLIC_BASE_URL}{request.get_full_path()}"
    token = twilio.auth_token_for(channel)
    if not twilio.signature_valid(url=url, params=params, signature=signature, token=token):
        return _forbidden("twilio signature mismatch")
    try:
        parsed = twilio.parse_form(cleaned)
    except twilio.NotWhatsAppError as exc:
        # An SMS (or another channel) sent to the WhatsApp webhook: not answered on WhatsApp,
        # and not swallowed either (Twilio's debugger shows the 400 and its reason).
        logger.warning("twilio post that is not WhatsApp refused")
        metrics.inbound_skipped("twilio", "not_whatsapp")
        return JsonResponse(
            {"error": {"code": "not_whatsapp", "message": str(exc), "details": []}}, status=400
        )
    except twilio.TwilioParseError as exc:
        return _bad_request(str(exc))
    if channel is None or not channel.is_active:
        logger.warning("twilio webhook for an unknown or inactive channel ignored")
        return _twiml()
    return _dispatch(channel, parsed) or _twiml()


def _cloud_api(request: HttpRequest) -> HttpResponse:
    """A Cloud API post. Each item is handled only for a channel the signature covers: a
    channel with its own `app_secret` (a tenant's own Meta app) by that secret, the others by
    META_APP_SECRET. So a tenant who knows its own secret can sign deliveries for its own
    channels only, whatever else it puts in the body."""
    header = request.headers.get("X-Hub-Signature-256", "")
    if not header:
        return _forbidden("missing hub signature")
    body = request.body
    platform_signed = cloud_api.signature_valid(
        body=body, header=header, secret=settings.META_APP_SECRET
    )
    try:
        payload = clean(json.loads(body))
    except (ValueError, UnicodeDecodeError, RecursionError):
        payload = None
    if payload is None:
        if not platform_signed:
            return _forbidden("bad body")
        return _bad_request("body is not JSON, or nested too deeply")
    ids = cloud_api.phone_number_ids(payload)
    if not platform_signed and len(ids) > MAX_TENANT_SIGNED_NUMBERS:
        # Only Meta (the platform's secret) batches many numbers; an unsigned body must not
        # make us look up as many channels as it likes.
        return _forbidden("hub signature mismatch")
    channels = channels_for_cloud_api(phone_number_ids=ids)
    # The lines about the whole body carry its tenant when all its known numbers have one;
    # each item's lines carry the tenant of its own channel (none for an unknown number).
    tenants = {channel.tenant_id for channel in channels.values()}
    with tenant_bound(next(iter(tenants)) if len(tenants) == 1 else None):
        return _cloud_api_for_channels(request, payload, channels, platform_signed=platform_signed)


def _cloud_api_for_channels(
    request: HttpRequest,
    payload: Any,
    channels: dict[str, ChannelInstance],
    *,
    platform_signed: bool,
) -> HttpResponse:
    body = request.body
    header = request.headers.get("X-Hub-Signature-256", "")
    covered = {
        number_id
        for number_id, channel in channels.items()
        if _signature_covers(channel, body=body, header=header, platform_signed=platform_signed)
    }
    if not covered and not platform_signed:
        return _forbidden("hub signature mismatch")
    try:
        items = cloud_api.parse_payload(payload)
    except cloud_api.CloudParseError as exc:
        return _bad_request(str(exc))
    for item in items:
        channel = channels.get(item.phone_number_id)
        with tenant_bound(channel.tenant_id if channel else None):
            if channel is None or not channel.is_active:
                logger.warning("cloud api delivery for an unknown channel skipped")
            elif item.phone_number_id not in covered:
                logger.warning("cloud api delivery not covered by its signature skipped")
            else:
                _dispatch(channel, item.item)
    return HttpResponse("OK", content_type="text/plain")


def _signature_covers(
    channel: ChannelInstance, *, body: bytes, header: str, platform_signed: bool
) -> bool:
    own_secret = (channel.secrets or {}).get("app_secret", "")
    if own_secret:
        return cloud_api.signature_valid(body=body, header=header, secret=own_secret)
    return platform_signed


def _dispatch(
    channel: ChannelInstance, item: ParsedInbound | ParsedEcho | ParsedUserIdChange | ParsedStatus
) -> HttpResponse | None:
    """Hand one parsed item to its service. A group message is skipped on purpose (logged
    and counted: a flow must never answer a group member in private); a sender without a
    phone number or WhatsApp user id is a bad request."""
    if isinstance(item, ParsedStatus):
        message_status_update(channel=channel, status=item)
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
        return _bad_request("sender has no phone number or WhatsApp user id")
    return None
