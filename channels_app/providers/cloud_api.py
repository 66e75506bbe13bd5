"""The WhatsApp Cloud API (Meta Graph API): JSON webhooks signed with `X-Hub-Signature-256`,
messages sent to `POST {base}/{phone_number_id}/messages` with the channel's access token,
media fetched in two steps (`GET /{media_id}` for a short-lived URL, then that URL).

Docs: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples and
https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlparse

import requests
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from channels_app.providers.base import (
    API_BASE_URL,
    MAX_TENANT_SIGNED_KEYS,
    AmbiguousSendError,
    FetchedTemplate,
    MediaDownloadError,
    MediaFile,
    OutboundPayload,
    ParsedEcho,
    ParsedInbound,
    ParsedLocation,
    ParsedMedia,
    ParsedStatus,
    ParsedUserIdChange,
    PermanentSendError,
    Provider,
    ProviderField,
    SendResult,
    TemplateSyncError,
    TransientSendError,
    WebhookReceiver,
    http_session,
    numbered_choices,
    placeholders,
    read_limited,
    scrub,
    send_post,
)
from channels_app.providers.outcomes import Outcome, outcome_of
from channels_app.providers.webhook import bad_request, forbidden
from channels_app.providers.webhook import logger as webhook_logger
from core import metrics
from core.context import tenant_bound
from core.crypto import normalize_phone, normalize_wa_user_id, provider_id_pseudonym
from core.storable import clean

if TYPE_CHECKING:
    from channels_app.models import ChannelInstance

logger = logging.getLogger(__name__)

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}
BUTTON_TITLE_MAX = 20
LIST_ROW_TITLE_MAX = 24
INTERACTIVE_BODY_MAX = 1024


class CloudParseError(ValueError):
    """The body is not a WhatsApp Business Account webhook."""


@dataclass(frozen=True)
class CloudItem:
    """One message, echo or status of a webhook batch, with the number it was addressed to."""

    phone_number_id: str
    item: ParsedInbound | ParsedEcho | ParsedUserIdChange | ParsedStatus


def signature_valid(*, body: bytes, header: str, secret: str) -> bool:
    """Constant-time check of `sha256=<hex>` against HMAC-SHA256(secret, raw body)."""
    if not header or not secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    given = header[len("sha256=") :].strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)  # bytes: a non-ASCII header is a mismatch


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _list(value: Any) -> list[Any]:
    """`value` when it is a list, else [] (webhook bodies are untrusted JSON)."""
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    """`value` when it is an object, else {}."""
    return value if isinstance(value, dict) else {}


def phone_number_ids(payload: Any) -> set[str]:
    """The `metadata.phone_number_id` of every change (for finding per-channel secrets)."""
    found: set[str] = set()
    if not isinstance(payload, dict):
        return found
    for entry in _list(payload.get("entry")):
        for change in _list(_dict(entry).get("changes")):
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            if isinstance(metadata, dict) and metadata.get("phone_number_id"):
                found.add(str(metadata["phone_number_id"]))
    return found


def parse_payload(payload: Any) -> list[CloudItem]:
    """Every message, business-app echo and status of a webhook body, in order.

    Raises CloudParseError when the body is not a webhook at all (no `entry` list). Parts that
    are malformed or not about messages are logged (by kind, never content), counted and
    skipped, so a valid delivery is never refused as a whole.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise CloudParseError("The body has no 'entry' list.")
    items: list[CloudItem] = []
    for entry in payload["entry"]:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            logger.warning("cloud api webhook: entry without changes skipped")
            continue
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                logger.warning("cloud api webhook: change without value skipped")
                continue
            field_name = str(change.get("field", "messages"))
            number_id = str(_dict(value.get("metadata")).get("phone_number_id") or "")
            if field_name == ECHO_FIELD:
                for raw in _list(value.get("message_echoes")):
                    echo = _parse_echo(raw)
                    if echo is not None:
                        items.append(CloudItem(number_id, echo))
                continue
            if field_name != "messages":
                logger.info("cloud api webhook: field skipped", extra={"field": field_name[:50]})
                continue
            profiles = _profiles(value.get("contacts"))
            user_ids = _user_ids(value.get("contacts"))
            for raw in _list(value.get("messages")):
                parsed = _parse_message(raw, profiles, user_ids)
                if parsed is not None:
                    items.append(CloudItem(number_id, parsed))
            for raw in _list(value.get("statuses")):
                status = _parse_status(raw)
                if status is not None:
                    items.append(CloudItem(number_id, status))
    return items


# The webhook field of the Business app's echoes (coexistence).
ECHO_FIELD = "smb_message_echoes"


def _profiles(contacts: Any) -> dict[str, str]:
    """Profile names by every id a `contacts` entry carries (`wa_id` and `user_id`)."""
    profiles: dict[str, str] = {}
    for contact in _list(contacts):
        if not isinstance(contact, dict):
            continue
        name = str(_dict(contact.get("profile")).get("name") or "")
        for key in ("wa_id", "user_id"):
            if contact.get(key):
                profiles[str(contact[key])] = name
    return profiles


def _user_ids(contacts: Any) -> dict[str, str]:
    """The user id of each `contacts` entry by its `wa_id` (a message may name its sender's
    user id only there)."""
    return {
        str(contact["wa_id"]): str(contact["user_id"])
        for contact in _list(contacts)
        if isinstance(contact, dict) and contact.get("wa_id") and contact.get("user_id")
    }


def sender_identity(*, phone_field: Any, user_id_field: Any) -> tuple[str, str]:
    """(E.164 phone, WhatsApp user id) of a Cloud API sender or recipient, each '' when absent
    or invalid. `from` usually holds the phone's digits, but holds the user id for a user
    without a visible number; `from_user_id` holds the user id."""
    raw_phone = str(phone_field or "").strip()
    phone = normalize_phone(raw_phone) if raw_phone.lstrip("+").isdigit() else ""
    user_id = normalize_wa_user_id(str(user_id_field or "")) or (
        "" if phone else normalize_wa_user_id(raw_phone)
    )
    return phone, user_id


def _parse_message(
    raw: Any, profiles: dict[str, str], user_ids: dict[str, str] | None = None
) -> ParsedInbound | ParsedUserIdChange | None:
    if not isinstance(raw, dict) or not raw.get("id"):
        logger.warning("cloud api webhook: message without id skipped")
        metrics.inbound_skipped("cloud_api", "malformed")
        return None
    raw_type = str(raw.get("type") or "unknown")[:50]
    if raw_type == "system":
        return _parse_system(raw)
    phone, user_id = sender_identity(
        phone_field=raw.get("from"),
        user_id_field=raw.get("from_user_id") or (user_ids or {}).get(str(raw.get("from"))),
    )
    if not phone and not user_id:
        logger.warning("cloud api webhook: message without a valid sender skipped")
        metrics.inbound_skipped("cloud_api", "no_sender")
        return None
    sender_keys = (str(raw.get("from") or ""), str(raw.get("from_user_id") or ""))
    profile_name = next((profiles[key] for key in sender_keys if key and key in profiles), "")
    parts = _parse_body(raw, raw_type)
    return ParsedInbound(
        provider_message_id=str(raw["id"])[:128],
        from_phone=phone,
        from_user_id=user_id,
        wa_id=phone.lstrip("+") or user_id,
        profile_name=profile_name[:200],
        timestamp=_timestamp(raw.get("timestamp")),
        context_id=str(_dict(raw.get("context")).get("id") or ""),
        group_id=str(raw.get("group_id") or "")[:128],
        **parts,
    )


def _parse_system(raw: dict[str, Any]) -> ParsedUserIdChange | None:
    """A system message: a user id change is kept (about the contact, not a message to show
    or answer); any other is logged and counted."""
    system = _dict(raw.get("system"))
    if system.get("type") == "user_changed_user_id":
        previous = normalize_wa_user_id(str(system.get("previous_user_id") or ""))
        current = normalize_wa_user_id(str(system.get("user_id") or ""))
        if previous and current:
            return ParsedUserIdChange(
                provider_message_id=str(raw["id"])[:128],
                previous_user_id=previous,
                user_id=current,
            )
    logger.info(
        "cloud api webhook: system message skipped",
        extra={"system_type": str(system.get("type") or "")[:50]},
    )
    metrics.inbound_skipped("cloud_api", "system")
    return None


def _parse_echo(raw: Any) -> ParsedEcho | None:
    if not isinstance(raw, dict) or not raw.get("id"):
        logger.warning("cloud api webhook: echo without id skipped")
        metrics.inbound_skipped("cloud_api", "malformed")
        return None
    phone, user_id = sender_identity(phone_field=raw.get("to"), user_id_field=raw.get("to_user_id"))
    if not phone and not user_id:
        logger.warning("cloud api webhook: echo without a valid recipient skipped")
        metrics.inbound_skipped("cloud_api", "no_sender")
        return None
    raw_type = str(raw.get("type") or "unknown")[:50]
    parts = _parse_body(raw, raw_type)
    return ParsedEcho(
        provider_message_id=str(raw["id"])[:128],
        to_phone=phone,
        to_user_id=user_id,
        kind=parts["kind"],
        text=parts.get("text", ""),
        raw_type=parts.get("raw_type", raw_type),
        timestamp=_timestamp(raw.get("timestamp")),
        content=parts.get("content", {}),
        media=parts.get("media", ()),
    )


MAX_CARDS = 20
MAX_CONTENT_CHARS = 20_000


def _bounded(value: Any) -> Any:
    """`value` when its JSON is no longer than MAX_CONTENT_CHARS, else None."""
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError):
        return None
    return value if size <= MAX_CONTENT_CHARS else None


def _referral(raw: dict[str, Any]) -> dict[str, Any]:
    referral = _dict(raw.get("referral"))
    keep = (
        "source_url",
        "source_id",
        "source_type",
        "headline",
        "body",
        "media_type",
        "image_url",
        "video_url",
        "thumbnail_url",
        "ctwa_clid",
    )
    return {key: str(referral[key])[:2000] for key in keep if referral.get(key) is not None}


def _parse_body(raw: dict[str, Any], raw_type: str) -> dict[str, Any]:
    """The kind-specific fields of a message or echo (kind, text, media, location, ...): the
    parser of its type in BODY_KINDS, `unsupported` for any other type or a body that does
    not fit its type. An ad referral is kept in the content of any kind."""
    body = raw.get(raw_type) if isinstance(raw.get(raw_type), dict) else {}
    content: dict[str, Any] = {}
    referral = _referral(raw)
    if referral:
        content["referral"] = referral
    parts: dict[str, Any] = {"raw_type": raw_type, "kind": "unsupported", "content": content}
    parser = BODY_KINDS.get(raw_type)
    found = parser(raw, body, raw_type) if parser is not None else None
    if not found:
        return parts
    return {**parts, **found, "content": {**content, **found.get("content", {})}}


# -- the message kinds: each parser takes (message, its body, its type) and returns the
# fields of its kind, or None when the body does not fit (the message is `unsupported`).

BodyParts = dict[str, Any] | None


def _text_body(raw: dict[str, Any], body: dict[str, Any], raw_type: str) -> BodyParts:
    return {"kind": "text", "text": str(body.get("body") or "")}


def _media_body(raw: dict[str, Any], body: dict[str, Any], raw_type: str) -> BodyParts:
    if not body.get("id"):
        return None
    kind = "audio" if raw_type == "voice" else raw_type  # legacy voice notes are audio
    media = ParsedMedia(
        media_type=kind,
        content_type=str(body.get("mime_type") or ""),
        provider_media_id=str(body["id"]),
        filename=str(body.get("filename") or "")[:255],
        sha256=str(body.get("sha256") or ""),
    )
    return {"kind": kind, "text": str(body.get("caption") or ""), "media": (media,)}


def _location_body(raw: dict[str, Any], body: dict[str, Any], raw_type: str) -> BodyParts:
    try:
        location = ParsedLocation(
            latitude=float(body["latitude"]),
            longitude=float(body["longitude"]),
            name=str(body.get("name") or "")[:500],
            address=str(body.get("address") or "")[:1000],
        )
    except (KeyError, TypeError, ValueError):
        return None
    if not (abs(location.latitude) <= 90 and abs(location.longitude) <= 180):
        return None
    return {"kind": "location", "location": location}


def _contacts_body(raw: dict[str, Any], body: dict[str, Any], raw_type: str) -> BodyParts:
    cards = [card for card in _list(raw.get("contacts")) if isinstance(card, dict)]
    cards = _bounded(cards[:MAX_CARDS])
    if not cards:
        return None
    return {"kind": "contacts", "content": {"contacts": cards}}


def _reaction_body(raw: dict[str, Any], body: dict[str, Any], raw_type: str) -> BodyParts:
    reaction = {"emoji": str(body.get("emoji") or "")[:32]}
    if body.get("message_id"):
        reaction["message_id"] = provider_id_pseudonym(str(body["message_id"])[:128])
    return {"kind": "reaction", "content": {"reaction": reaction}}


def _order_body(raw: dict[str, Any], body: dict[str, Any], raw_type: str) -> BodyParts:
    items = [
        {
            key: item[key]
            for key in ("product_retailer_id", "quantity", "item_price", "currency")
            if isinstance(item, dict) and key in item
        }
        for item in _list(body.get("product_items"))[:100]
    ]
    order = {"catalog_id": str(body.get("catalog_id") or ""), "product_items": items}
    return {
        "kind": "order",
        "text": str(body.get("text") or ""),
        "content": {"order": _bounded(order) or {}},
    }


def _interactive_body(raw: dict[str, Any], body: dict[str, Any], raw_type: str) -> BodyParts:
    """A reply button or list row (by its id), or a WhatsApp Flow's answers (`nfm_reply`)."""
    reply_type = str(body.get("type") or "")
    reply = body.get(reply_type) if isinstance(body.get(reply_type), dict) else None
    if reply_type in ("button_reply", "list_reply") and reply and reply.get("id"):
        return {
            "kind": "interactive",
            "text": str(reply.get("title") or ""),
            "interactive_id": str(reply["id"])[:256],
            "raw_type": f"interactive.{reply_type}",
        }
    if reply_type == "nfm_reply" and reply is not None:
        return {
            "kind": "flow_reply",
            "text": str(reply.get("body") or ""),
            "raw_type": "interactive.nfm_reply",
            "content": {"flow_reply": _flow_reply(reply)},
        }
    return None


def _button_body(raw: dict[str, Any], body: dict[str, Any], raw_type: str) -> BodyParts:
    payload = str(body.get("payload") or body.get("text") or "")
    return {"kind": "button", "text": str(body.get("text") or ""), "interactive_id": payload[:256]}


BODY_KINDS: dict[str, Callable[[dict[str, Any], dict[str, Any], str], BodyParts]] = {
    "text": _text_body,
    **dict.fromkeys((*MEDIA_TYPES, "voice"), _media_body),
    "location": _location_body,
    "contacts": _contacts_body,
    "reaction": _reaction_body,
    "order": _order_body,
    "interactive": _interactive_body,
    "button": _button_body,
}


def _flow_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """A WhatsApp Flow's answers: `response_json` is a JSON object in a string. Anything else
    (not JSON, not an object, too large) keeps the flow's name only, and is logged."""
    response: Any = None
    try:
        response = json.loads(str(reply.get("response_json") or ""))
    except (ValueError, RecursionError):
        response = None
    if not isinstance(response, dict) or _bounded(response) is None:
        logger.warning("cloud api webhook: flow reply without a JSON object kept without it")
        response = {}
    return {"name": str(reply.get("name") or "")[:100], "response": response}


def _parse_status(raw: Any) -> ParsedStatus | None:
    if not isinstance(raw, dict) or not raw.get("id") or not raw.get("status"):
        logger.warning("cloud api webhook: status without id skipped")
        return None
    raw_status = str(raw["status"]).lower()
    error_code, error_detail = "", ""
    errors = _list(raw.get("errors"))
    if errors and isinstance(errors[0], dict):
        error_code = str(errors[0].get("code") or "")
        details = (
            (errors[0].get("error_data") or {}).get("details")
            if isinstance(errors[0].get("error_data"), dict)
            else ""
        )
        error_detail = scrub(
            str(details or errors[0].get("title") or errors[0].get("message") or "")
        )
    return ParsedStatus(
        provider_message_id=str(raw["id"])[:128],
        status=STATUS_MAP.get(raw_status, ""),
        raw_status=raw_status[:30],
        error_code=error_code[:64],
        error_detail=error_detail,
        timestamp=_timestamp(raw.get("timestamp")),
    )


def _media_kind(url: str) -> str:
    path = url.split("?")[0].lower()
    if path.endswith((".mp4", ".3gp")):
        return "video"
    if path.endswith((".mp3", ".ogg", ".opus", ".amr", ".aac", ".m4a")):
        return "audio"
    if path.endswith((".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".txt")):
        return "document"
    return "image"


def build_message(payload: OutboundPayload) -> list[dict[str, Any]]:
    """The Graph API bodies for one of our messages (usually one; audio plus text is two).

    Choices go out as reply buttons (up to 3, titles up to 20 characters) or a list (up to 10,
    rows up to 24 characters); anything beyond that falls back to numbered text.
    """
    base: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    to = payload.to_phone.lstrip("+")
    if to:
        base["to"] = to
    else:
        # A contact known only by a business-scoped user id: Meta takes it in `recipient`
        # (`to` would win over it, so `to` is left out altogether).
        base["recipient"] = payload.to_user_id
    text, choices = payload.text, payload.choices
    fits_interactive = 0 < len(choices) and 0 < len(text) <= INTERACTIVE_BODY_MAX
    if fits_interactive and len(choices) <= 3:
        interactive: dict[str, Any] = {
            "type": "button",
            "body": {"text": text},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": cid, "title": label[:BUTTON_TITLE_MAX]}}
                    for cid, label in choices
                ]
            },
        }
        if payload.media_url and _media_kind(payload.media_url) in ("image", "video", "document"):
            kind = _media_kind(payload.media_url)
            interactive["header"] = {"type": kind, kind: {"link": payload.media_url}}
            return [{**base, "type": "interactive", "interactive": interactive}]
        bodies = [{**base, "type": "interactive", "interactive": interactive}]
        return _with_media(base, payload.media_url, None) + bodies
    if fits_interactive and len(choices) <= 10:
        interactive = {
            "type": "list",
            "body": {"text": text},
            "action": {
                "button": "Options",
                "sections": [
                    {
                        "title": "Options",
                        "rows": [
                            {"id": cid, "title": label[:LIST_ROW_TITLE_MAX]}
                            for cid, label in choices
                        ],
                    }
                ],
            },
        }
        bodies = [{**base, "type": "interactive", "interactive": interactive}]
        return _with_media(base, payload.media_url, None) + bodies
    body_text = numbered_choices(text, choices)
    if payload.media_url:
        return _with_media(base, payload.media_url, body_text)
    return [{**base, "type": "text", "text": {"preview_url": False, "body": body_text}}]


def _with_media(base: dict[str, Any], url: str | None, caption: str | None) -> list[dict[str, Any]]:
    if not url:
        return []
    kind = _media_kind(url)
    media: dict[str, Any] = {"link": url}
    bodies = []
    if caption and kind != "audio":
        media["caption"] = caption
    bodies.append({**base, "type": kind, kind: media})
    if caption and kind == "audio":  # audio takes no caption: the text follows it
        bodies.append({**base, "type": "text", "text": {"body": caption}})
    return bodies


def build_template_message(payload: OutboundPayload) -> dict[str, Any]:
    """The Graph API body of a template message: `type: template` with the template's name,
    its language code and one component per part that has parameters (header, body), each
    parameter a `text` (with its `parameter_name` for a template with named parameters)."""
    template = payload.template
    assert template is not None
    base: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    to = payload.to_phone.lstrip("+")
    if to:
        base["to"] = to
    else:
        base["recipient"] = payload.to_user_id
    components = []
    for part in ("header", "body"):
        values = [(name, value) for comp, name, value in template.parameters if comp == part]
        if values:
            components.append(
                {
                    "type": part,
                    "parameters": [
                        {"type": "text", "text": value}
                        | ({"parameter_name": name} if template.named else {})
                        for name, value in values
                    ],
                }
            )
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if components:
        body["components"] = components
    return {**base, "type": "template", "template": body}


# The fields a template sync asks for (Graph API WhatsAppMessageTemplate).
TEMPLATE_FIELDS = "id,name,language,status,category,components,parameter_format,rejected_reason"
TEMPLATE_PAGE_SIZE = 100
MAX_TEMPLATE_PAGES = 50


def parse_template(raw: Any) -> FetchedTemplate | None:
    """One entry of `GET /{business_account_id}/message_templates` (None when it is not a
    template with a name). Parameters are the text placeholders of the header, then of the
    body (positional ones in number order, as Meta fills them: `{{1}}` first); the text kept
    is header, body and footer."""
    if not isinstance(raw, dict) or not raw.get("name"):
        return None
    components = [item for item in _list(raw.get("components")) if isinstance(item, dict)]
    texts, parameters = _template_texts(components)
    named = str(raw.get("parameter_format", "")).upper() == "NAMED" or any(
        not item["name"].isdigit() for item in parameters
    )
    status, reason = _template_status(raw, components)
    return FetchedTemplate(
        name=str(raw["name"])[:512],
        language=str(raw.get("language") or "")[:20],
        category=str(raw.get("category") or "")[:40],
        status=status,
        provider_template_id=str(raw.get("id") or "")[:64],
        body="\n\n".join(texts),
        components=components,
        parameters=tuple(parameters),
        named=named,
        rejection_reason=reason,
    )


def _template_texts(
    components: list[dict[str, Any]],
) -> tuple[list[str], list[dict[str, str]]]:
    """The texts of a template's text header, body and footer, and the placeholders of its
    header and body (positional ones in number order)."""
    parameters: list[dict[str, str]] = []
    texts: list[str] = []
    for component in components:
        kind = str(component.get("type", "")).lower()
        text = str(component.get("text") or "")
        if kind == "header" and str(component.get("format", "TEXT")).upper() != "TEXT":
            continue
        if kind in ("header", "body", "footer") and text:
            texts.append(text)
        if kind in ("header", "body"):
            names = placeholders(text)
            if all(name.isdigit() for name in names):  # Meta fills {{1}} first
                names.sort(key=int)
            parameters += [{"component": kind, "name": name} for name in names]
    return texts, parameters


def _template_status(raw: dict[str, Any], components: list[dict[str, Any]]) -> tuple[str, str]:
    """The stored status and reason: Meta's, except that an approved template whose send
    would need parameters we cannot give is `unsupported` (never offered)."""
    reason = str(raw.get("rejected_reason") or "")
    reason = "" if reason.upper() == "NONE" else scrub(reason)
    status = str(raw.get("status") or "").lower()[:40]
    if status == "approved" and (unsupported := _unsupported(components)):
        status = "unsupported"  # TemplateStatus.UNSUPPORTED
        reason = f"Approved, but this service cannot send it: it has {unsupported}."
    return status, reason


# Header formats whose send needs a header parameter (a media link, a location).
_PARAMETER_HEADERS = {"IMAGE", "VIDEO", "DOCUMENT", "LOCATION"}
# Buttons whose send needs a button parameter (a code to copy, a one-time password).
_PARAMETER_BUTTONS = {"COPY_CODE", "OTP"}


def _unsupported(components: list[dict[str, Any]]) -> str:
    """What in a template's components needs send parameters other than header and body text
    (which is all `build_template_message` sends), or "" when it has nothing such."""
    for component in components:
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER" and str(component.get("format", "TEXT")).upper() in _PARAMETER_HEADERS:
            return f"a header of format {str(component.get('format')).upper()}"
        if kind == "CAROUSEL":
            return "a carousel"
        if kind != "BUTTONS":
            continue
        for button in _list(component.get("buttons")):
            if not isinstance(button, dict):
                continue
            button_type = str(button.get("type", "")).upper()
            if button_type in _PARAMETER_BUTTONS:
                return f"a {button_type.lower().replace('_', '-')} button"
            if button_type == "URL" and placeholders(str(button.get("url") or "")):
                return "a URL button with a variable"
    return ""


def _same_origin(url: str, base: str) -> bool:
    """Whether a paging URL the provider gave points at the host we asked (the access token
    goes with it)."""

    ours, theirs = urlparse(base), urlparse(url)
    return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)


def _incomplete(what: str) -> TemplateSyncError:
    return TemplateSyncError(
        f"The Graph API's template listing is incomplete ({what}); nothing was changed.",
        code="incomplete",
    )


def _error_of(response: requests.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return str(response.status_code), ""
    detail = (error.get("error_data") or {}).get("details") or error.get("message") or ""
    return str(error.get("code") or response.status_code), scrub(str(detail))


# Distinct phone numbers a body not signed by the platform may name (tenant-signed bodies).
MAX_TENANT_SIGNED_NUMBERS = MAX_TENANT_SIGNED_KEYS


def meta_subscription_answer(request: HttpRequest) -> HttpResponse | None:
    """Meta's `GET` verification handshake: the challenge back when `hub.verify_token` is
    META_VERIFY_TOKEN, else a 403; None for a request that is no such handshake (no
    `hub.mode`), which another provider may answer."""
    if "hub.mode" not in request.GET:
        return None
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    expected = settings.META_VERIFY_TOKEN
    if mode == "subscribe" and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return HttpResponse(challenge, content_type="text/plain")
    return forbidden("verification token mismatch")


def own_secret_covers(
    channel: ChannelInstance, *, body: bytes, header: str, platform_signed: bool
) -> bool:
    """Whether a body's signature covers the channel: its own `app_secret` when it has one
    (a tenant's own Meta app), else the platform's META_APP_SECRET."""
    own_secret = (channel.secrets or {}).get("app_secret", "")
    if own_secret:
        return signature_valid(body=body, header=header, secret=own_secret)
    return platform_signed


class CloudApiProvider(Provider):
    code = "cloud_api"
    name = "WhatsApp Cloud API"
    short_name = "Cloud API"
    setup_note = "From Meta's developer dashboard, WhatsApp → API setup."
    settings_fields = (
        ProviderField(
            "phone_number_id",
            "Phone number ID",
            "Meta → WhatsApp → API setup: the number's “Phone number ID” (not the number).",
            required=True,
            max_length=64,  # the column the webhooks find the channel by
        ),
        ProviderField(
            "business_account_id",
            "WhatsApp Business Account ID",
            "Shown next to the phone number ID; needed to sync the number's message templates.",
        ),
        API_BASE_URL,
    )
    secret_fields = (
        ProviderField(
            "access_token",
            "Access token",
            "A system user's permanent token with whatsapp_business_messaging.",
            secret=True,
            required=True,
        ),
        ProviderField(
            "app_secret",
            "App secret",
            "Meta app → Settings → Basic. Checks the signature of Meta's webhooks; leave empty "
            "when the platform's Meta app sends them.",
            secret=True,
        ),
    )

    def clean(
        self, *, settings: dict[str, Any], secrets: dict[str, Any], exclude_pk: object = None
    ) -> dict[str, str]:
        """A phone number ID belongs to one channel (the webhooks find channels by it)."""
        from channels_app.models import ChannelInstance

        taken = ChannelInstance.objects.filter(
            provider=self.code, phone_number_id=str(settings["phone_number_id"])
        ).exclude(pk=exclude_pk)
        if taken.exists():
            return {"phone_number_id": "Another channel already uses this phone_number_id."}
        return {}

    # -- webhooks: JSON posts signed with X-Hub-Signature-256 ----------------------------------

    def accepts(self, request: HttpRequest) -> bool:
        return request.content_type == "application/json"

    def verify_subscription(self, request: HttpRequest) -> HttpResponse | None:
        return meta_subscription_answer(request)

    def verify(self, request: HttpRequest, channel: ChannelInstance | None) -> bool:
        header = request.headers.get("X-Hub-Signature-256", "")
        if channel is None:
            return signature_valid(
                body=request.body, header=header, secret=settings.META_APP_SECRET
            )
        platform_signed = self.verify(request, None)
        return own_secret_covers(
            channel, body=request.body, header=header, platform_signed=platform_signed
        )

    def lookup(self, keys: set[str]) -> dict[str, ChannelInstance]:
        from channels_app.selectors import channels_by_key

        return channels_by_key(provider=self.code, keys=keys, field="phone_number_id")

    def handle_webhook(self, request: HttpRequest, receiver: WebhookReceiver) -> HttpResponse:
        """A batch. Each item is handled only for a channel the signature covers: a channel
        with its own `app_secret` (a tenant's own Meta app) by that secret, the others by
        META_APP_SECRET. So a tenant who knows its own secret can sign deliveries for its own
        channels only, whatever else it puts in the body."""
        header = request.headers.get("X-Hub-Signature-256", "")
        if not header:
            return forbidden("missing hub signature")
        platform_signed = self.verify(request, None)
        try:
            payload = clean(json.loads(request.body))
        except (ValueError, UnicodeDecodeError, RecursionError):
            payload = None
        if payload is None:
            if not platform_signed:
                return forbidden("bad body")
            return bad_request("body is not JSON, or nested too deeply")
        ids = phone_number_ids(payload)
        if not platform_signed and len(ids) > MAX_TENANT_SIGNED_NUMBERS:
            # Only Meta (the platform's secret) batches many numbers; an unsigned body must
            # not make us look up as many channels as it likes.
            return forbidden("hub signature mismatch")
        channels = self.lookup(ids)
        # The lines about the whole body carry its tenant when all its known numbers have one;
        # each item's lines carry the tenant of its own channel (none for an unknown number).
        tenants = {channel.tenant_id for channel in channels.values()}
        with tenant_bound(next(iter(tenants)) if len(tenants) == 1 else None):
            return self._handle_for_channels(
                request, payload, channels, receiver, platform_signed=platform_signed
            )

    def _handle_for_channels(
        self,
        request: HttpRequest,
        payload: Any,
        channels: dict[str, ChannelInstance],
        receiver: WebhookReceiver,
        *,
        platform_signed: bool,
    ) -> HttpResponse:
        header = request.headers.get("X-Hub-Signature-256", "")
        covered = {
            number_id
            for number_id, channel in channels.items()
            if own_secret_covers(
                channel, body=request.body, header=header, platform_signed=platform_signed
            )
        }
        if not covered and not platform_signed:
            return forbidden("hub signature mismatch")
        try:
            items = parse_payload(payload)
        except CloudParseError as exc:
            return bad_request(str(exc))
        for item in items:
            channel = channels.get(item.phone_number_id)
            with tenant_bound(channel.tenant_id if channel else None):
                if channel is None or not channel.is_active:
                    webhook_logger.warning("cloud api delivery for an unknown channel skipped")
                elif item.phone_number_id not in covered:
                    webhook_logger.warning(
                        "cloud api delivery not covered by its signature skipped"
                    )
                else:
                    receiver.dispatch(channel, item.item)
        return HttpResponse("OK", content_type="text/plain")

    # -- sending ---------------------------------------------------------------------------------

    def base_url(self, channel: ChannelInstance) -> str:
        override = (channel.settings or {}).get("api_base_url")
        return (override or settings.WHATSAPP_GRAPH_API_URL).rstrip("/")

    def _token(self, channel: ChannelInstance) -> str:
        token = (channel.secrets or {}).get("access_token") or ""
        if not token:
            raise PermanentSendError("The channel has no access token.", code="no_credentials")
        return token

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        return self._post(channel, build_message(payload))

    def _post(self, channel: ChannelInstance, bodies: list[dict[str, Any]]) -> SendResult:
        """Post the bodies of one message in order; the first one's message id."""
        token = self._token(channel)
        number_id = (channel.settings or {}).get("phone_number_id")
        if not number_id:
            raise PermanentSendError("The channel has no phone_number_id.", code="no_number_id")
        url = f"{self.base_url(channel)}/{number_id}/messages"
        first_id = ""
        for position, body in enumerate(bodies):
            response = send_post(
                url, body=body, token=token, first=position == 0, who="The Graph API"
            )
            if response.status_code >= 400:
                code, detail = _error_of(response)
                # The outcome table first ("slow down" codes come with a 400 too), then HTTP.
                listed = outcome_of(provider=self.code, code=code)
                transient = (
                    listed is Outcome.RETRY
                    if listed is not None
                    else response.status_code == 429 or response.status_code >= 500
                )
                if position:
                    raise AmbiguousSendError(detail, code=code, status=response.status_code)
                error = TransientSendError if transient else PermanentSendError
                raise error(detail, code=code, status=response.status_code)
            try:
                message_id = str(response.json()["messages"][0]["id"])
            except (ValueError, KeyError, IndexError, TypeError):
                raise AmbiguousSendError(
                    "The Graph API accepted the request without a message id.", code="no_id"
                ) from None
            first_id = first_id or message_id
        return SendResult(provider_message_id=first_id, raw_status="accepted")

    def send_template(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """One `type: template` message (the same request, errors and outcomes as `send`)."""
        return self._post(channel, [build_template_message(payload)])

    # -- message templates -----------------------------------------------------------------------

    supports_templates = True

    def templates_fetch(self, *, channel: ChannelInstance) -> list[FetchedTemplate]:
        """Every page of `GET {base}/{business_account_id}/message_templates`. A listing we
        cannot read to its end (a page without `data`, a next page on another host, more pages
        than MAX_TEMPLATE_PAGES) is a TemplateSyncError `incomplete`: templates missing from a
        partial listing must not be marked gone."""
        account_id = str((channel.settings or {}).get("business_account_id") or "")
        if not account_id:
            raise TemplateSyncError(
                "The channel has no business_account_id (WhatsApp Business Account ID): "
                "set it in the channel's settings to sync its templates.",
                code="no_business_account_id",
            )
        token = (channel.secrets or {}).get("access_token") or ""
        if not token:
            raise TemplateSyncError("The channel has no access token.", code="no_credentials")
        base = self.base_url(channel)
        url = f"{base}/{quote(account_id, safe='')}/message_templates"
        params: dict[str, Any] | None = {"fields": TEMPLATE_FIELDS, "limit": TEMPLATE_PAGE_SIZE}
        found: list[FetchedTemplate] = []
        for _page in range(MAX_TEMPLATE_PAGES):
            page = self._get_json(url, params=params, token=token)
            if not isinstance(page.get("data"), list):
                raise _incomplete("a page without its `data` list")
            found += [t for t in map(parse_template, page["data"]) if t is not None]
            following = _dict(page.get("paging")).get("next")
            if not following:
                return found
            if not _same_origin(str(following), base):
                raise _incomplete("a next page on another host (not followed)")
            url, params = str(following), None  # the next page's URL carries the parameters
        raise _incomplete(f"more than {MAX_TEMPLATE_PAGES} pages")

    def _get_json(self, url: str, *, params: dict[str, Any] | None, token: str) -> dict[str, Any]:
        try:
            response = http_session().get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
                timeout=settings.PROVIDER_HTTP_TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise TemplateSyncError(
                f"The Graph API could not be reached ({type(exc).__name__}).", code="network"
            ) from None
        if response.status_code >= 400:
            code, detail = _error_of(response)
            raise TemplateSyncError(
                detail or f"The Graph API answered {response.status_code}.",
                code=code,
                status=response.status_code,
            )
        try:
            page = response.json()
        except ValueError:
            page = None
        if not isinstance(page, dict):
            raise TemplateSyncError(
                "The Graph API answered something else than JSON.", code="bad_body"
            )
        return page

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        token = (channel.secrets or {}).get("access_token") or ""
        headers = {"Authorization": f"Bearer {token}"}
        timeout = settings.PROVIDER_HTTP_TIMEOUT_SECONDS
        try:
            meta = http_session().get(
                f"{self.base_url(channel)}/{quote(media_id, safe='')}",
                headers=headers,
                timeout=timeout,
            )
            if meta.status_code != 200:
                raise MediaDownloadError(
                    f"media lookup answered {meta.status_code}", status=meta.status_code
                )
            info = meta.json()
            media_url = info["url"]
            response = http_session().get(media_url, headers=headers, timeout=timeout, stream=True)
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise MediaDownloadError(type(exc).__name__, code="network") from None
        with response:
            if response.status_code != 200:
                raise MediaDownloadError(
                    f"media answered {response.status_code}", status=response.status_code
                )
            content = read_limited(response)
            content_type = info.get("mime_type") or response.headers.get("Content-Type", "")
            return MediaFile(content=content, content_type=content_type)
