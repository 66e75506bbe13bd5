"""Instagram direct messages through the Instagram API with Instagram Login.

Webhooks (`POST /api/webhooks/instagram`, object `instagram`) carry `entry[]`, each with `id`
(our Instagram professional account) and `messaging[]` events: `message` (text, attachments,
a story reply in `reply_to.story`, `is_echo` for what the account sent, `is_deleted` when the
person unsent it, `is_unsupported`), `message_edit`, `reaction`, `read` and `postback`. They
are signed with `X-Hub-Signature-256` (HMAC-SHA256 of the body with the Meta app's secret),
and the `GET` handshake answers `hub.challenge` for META_VERIFY_TOKEN, as for WhatsApp.
Replies go to `POST {INSTAGRAM_GRAPH_API_URL}/{account id}/messages` with the account's
token as a bearer, body `{"recipient": {"id": <IGSID>}, "message": {...}}`, answered with
`{"recipient_id", "message_id"}`; a refusal is Graph's `{"error": {"code", "message", ...}}`.

Docs: https://developers.facebook.com/docs/instagram-platform/webhooks/examples,
https://developers.facebook.com/docs/instagram-platform/instagram-api-with-instagram-login/messaging-api
and https://developers.facebook.com/docs/messenger-platform/instagram/features/webhook.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from channels_app.providers.base import (
    API_BASE_URL,
    AmbiguousSendError,
    MediaDownloadError,
    MediaFile,
    OutboundPayload,
    ParsedEdit,
    ParsedInbound,
    ParsedMedia,
    ParsedStatus,
    PermanentSendError,
    Provider,
    ProviderField,
    SendResult,
    TransientSendError,
    WebhookItem,
    http_session,
    numbered_choices,
    read_limited,
    scrub,
    send_post,
)
from channels_app.providers.cloud_api import (
    meta_subscription_answer,
    own_secret_covers,
    signature_valid,
)
from channels_app.providers.webhook import forbidden
from core import metrics
from core.crypto import normalize_ig_user_id
from core.storable import clean

if TYPE_CHECKING:
    from channels_app.models import ChannelInstance

logger = logging.getLogger(__name__)

CODE = "instagram"
IDENTIFIER_PREFIX = "instagram:"
# An Instagram professional account id (digits).
_ACCOUNT_ID = re.compile(r"^[0-9]{1,64}$")
# Instagram takes at most 13 quick replies, each title at most 20 characters; a text of at
# most 1000 bytes (UTF-8).
QUICK_REPLIES_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
TEXT_MAX_BYTES = 1000
# Attachment types Meta names -> our media types (the others, `share`, `story_mention`,
# `ig_reel`, ..., are kept as what they are, with their URL, as an unsupported message).
MEDIA_TYPES = {"image": "image", "video": "video", "audio": "audio", "file": "document"}
# Where Meta serves attachments from: media is fetched only from these hosts (https).
MEDIA_HOSTS = ("fbsbx.com", "fbcdn.net", "cdninstagram.com", "instagram.com", "facebook.com")
# The longest message id taken (stored as a keyed hash past 120 characters, see
# `core.crypto.provider_id_pseudonym`); a longer one is not an id.
MID_MAX = 1000
# Graph error codes worth another try (throttling, a passing fault); the others are final.
TRANSIENT_CODES = {"1", "2", "4", "17", "32", "613"}


class InstagramParseError(ValueError):
    """The body is not an Instagram webhook (no `object: instagram` with an `entry` list)."""


def account_key(account_id: object) -> str:
    """The key a webhook names its channel by: the channel's identifier."""
    return f"{IDENTIFIER_PREFIX}{account_id}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any, limit: int = 4096) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _timestamp(value: Any) -> datetime | None:
    """Meta's messaging timestamps are milliseconds since the epoch."""
    try:
        number = int(value)
        return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_payload(payload: Any) -> list[WebhookItem]:
    """The messages, edits, reactions and read receipts of a webhook body, each with the
    key of the account it was sent to (`instagram:<entry id>`), in order.

    Raises InstagramParseError for a body that is not an Instagram webhook. Events that are
    not about messaging (`changes`: comments, mentions), echoes of what the account sent, and
    malformed events are logged by kind (never content), counted and skipped, so a valid
    delivery is never refused as a whole.
    """
    if not isinstance(payload, dict) or payload.get("object") != "instagram":
        raise InstagramParseError("The body is not an Instagram webhook.")
    if not isinstance(payload.get("entry"), list):
        raise InstagramParseError("The body has no 'entry' list.")
    items: list[WebhookItem] = []
    for entry in payload["entry"]:
        entry = _dict(entry)
        account = str(entry.get("id") or "")
        if not _ACCOUNT_ID.match(account):
            _skipped("no_account", "instagram webhook: entry without an account id skipped")
            continue
        if "messaging" not in entry:
            _skipped("not_messaging", "instagram webhook: entry without messaging skipped")
            continue
        for event in _list(entry.get("messaging")):
            item = parse_event(_dict(event), account=account)
            if item is not None:
                items.append((account_key(account), item))
    return items


def _skipped(reason: str, line: str) -> None:
    logger.info(line)
    metrics.inbound_skipped(CODE, reason)


def parse_event(
    event: dict[str, Any], *, account: str
) -> ParsedInbound | ParsedStatus | ParsedEdit | None:
    """One `messaging[]` event, or None when it is skipped (logged and counted)."""
    sender = normalize_ig_user_id(str(_dict(event.get("sender")).get("id") or ""))
    timestamp = _timestamp(event.get("timestamp"))
    if "message" in event:
        message = _dict(event["message"])
        if message.get("is_echo") or sender == account:
            # What the account itself sent (our replies, or someone typing in the Instagram
            # app): never a contact's message, never a flow turn (see the README).
            _skipped("echo", "instagram webhook: echo skipped")
            return None
        return _parse_message(message, sender=sender, timestamp=timestamp)
    if "message_edit" in event:
        edit = _dict(event["message_edit"])
        mid = _text(edit.get("mid"), MID_MAX)
        if not mid:
            return _bad("message_edit")
        try:
            count = int(edit.get("num_edit") or 0)
        except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's 1e400
            count = 0
        return ParsedEdit(provider_message_id=mid, text=_text(edit.get("text")), num_edit=count)
    if "reaction" in event:
        return _parse_reaction(_dict(event["reaction"]), sender=sender, timestamp=timestamp)
    if "read" in event:
        mid = _text(_dict(event["read"]).get("mid"), MID_MAX)
        if not mid:
            return _bad("read")
        return ParsedStatus(
            provider_message_id=mid,
            status="read",
            raw_status="read",
            timestamp=timestamp,
            cumulative=True,
        )
    if "postback" in event:
        return _parse_postback(_dict(event["postback"]), sender=sender, timestamp=timestamp)
    _skipped("unknown_event", "instagram webhook: event of another kind skipped")
    return None


def _bad(kind: str) -> None:
    _skipped("malformed", f"instagram webhook: malformed {kind} event skipped")
    return None


def _parse_message(
    message: dict[str, Any], *, sender: str, timestamp: datetime | None
) -> ParsedInbound | ParsedEdit | None:
    mid = _text(message.get("mid"), MID_MAX)
    if not mid:
        return _bad("message")
    if message.get("is_deleted"):
        return ParsedEdit(provider_message_id=mid, deleted=True)
    if not sender:
        return _bad("message")
    text = _text(message.get("text"))
    content: dict[str, Any] = {}
    kind, raw_type, media = "text", "text", []
    shared: list[dict[str, str]] = []
    for attachment in _list(message.get("attachments")):
        attachment = _dict(attachment)
        attachment_type = _text(attachment.get("type"), 32)
        url = _text(_dict(attachment.get("payload")).get("url"), 2000)
        if attachment_type in MEDIA_TYPES and url:
            media.append(ParsedMedia(media_type=MEDIA_TYPES[attachment_type], url=url))
        elif attachment_type:
            shared.append({"type": attachment_type, "url": url})
    if media:
        kind = raw_type = media[0].media_type
    elif shared:
        kind, raw_type = ("text" if text else "unsupported"), shared[0]["type"]
    if shared:
        content["attachments"] = shared
    reply_to = _dict(message.get("reply_to"))
    story = _dict(reply_to.get("story"))
    if story:
        content["story_reply"] = {
            "story_id": _text(story.get("id"), 128),
            "url": _text(story.get("url"), 2000),
        }
        raw_type = "story_reply"
    interactive_id = _text(_dict(message.get("quick_reply")).get("payload"), 1000)
    if interactive_id:
        kind, raw_type = "interactive", "quick_reply"
    if message.get("referral"):
        content["referral"] = _referral(_dict(message.get("referral")))
    if message.get("is_unsupported") or (kind == "text" and not text and not content):
        kind, raw_type = "unsupported", "unsupported"
    return ParsedInbound(
        provider_message_id=mid,
        from_phone="",
        from_ig_user_id=sender,
        kind=kind,
        text=text,
        content=content,
        interactive_id=interactive_id,
        media=tuple(media),
        raw_type=raw_type,
        timestamp=timestamp,
        context_id=_text(reply_to.get("mid"), MID_MAX),
    )


def _referral(referral: dict[str, Any]) -> dict[str, str]:
    return {
        key: _text(referral.get(key), 500)
        for key in ("ref", "source", "type", "ad_id")
        if referral.get(key)
    }


def _parse_reaction(
    reaction: dict[str, Any], *, sender: str, timestamp: datetime | None
) -> ParsedInbound | None:
    """A reaction to one of the account's messages (`action` react or unreact, with its
    `emoji`), as an inbound message of kind `reaction` (no flow runs for one). Meta gives a
    reaction no id of its own: the id is derived from what it is about, its action and time,
    so a redelivery is the same message."""
    mid = _text(reaction.get("mid"), MID_MAX)
    if not mid or not sender:
        return _bad("reaction")
    action = _text(reaction.get("action"), 16) or "react"
    emoji = _text(reaction.get("emoji"), 32) if action == "react" else ""
    stamp = timestamp.isoformat() if timestamp else ""
    digest = hashlib.sha256(f"{mid}|{sender}|{action}|{emoji}|{stamp}".encode()).hexdigest()
    return ParsedInbound(
        provider_message_id=f"igreaction.{digest[:64]}",
        from_phone="",
        from_ig_user_id=sender,
        kind="reaction",
        content={
            "reaction": {
                "message_id": mid,
                "emoji": emoji,
                "name": _text(reaction.get("reaction"), 32),
                "action": action,
            }
        },
        raw_type="reaction",
        timestamp=timestamp,
    )


def _parse_postback(
    postback: dict[str, Any], *, sender: str, timestamp: datetime | None
) -> ParsedInbound | None:
    """An icebreaker or a button of a template pressed: the button's payload as a choice."""
    mid = _text(postback.get("mid"), MID_MAX)
    if not mid or not sender:
        return _bad("postback")
    return ParsedInbound(
        provider_message_id=mid,
        from_phone="",
        from_ig_user_id=sender,
        kind="interactive",
        text=_text(postback.get("title")),
        interactive_id=_text(postback.get("payload"), 1000),
        raw_type="postback",
        timestamp=timestamp,
    )


# -- sending -----------------------------------------------------------------------------------


def build_messages(payload: OutboundPayload) -> list[dict[str, Any]]:
    """The Graph bodies for one of our messages: the media first (an attachment by URL),
    then the text, with the choices as quick replies (up to 13, titles cut to 20
    characters; more than that are numbered in the text)."""
    recipient = {"id": payload.to_ig_user_id}
    bodies: list[dict[str, Any]] = []
    if payload.media_url:
        bodies.append(
            {
                "recipient": recipient,
                "message": {
                    "attachment": {
                        "type": _attachment_type(payload.media_url),
                        "payload": {"url": payload.media_url},
                    }
                },
            }
        )
    choices = payload.choices
    quick = bool(choices) and len(choices) <= QUICK_REPLIES_MAX and bool(payload.text)
    if not (payload.text or choices):
        return bodies
    parts = text_parts(payload.text if quick else numbered_choices(payload.text, choices))
    for number, part in enumerate(parts, 1):
        message: dict[str, Any] = {"text": part}
        if quick and number == len(parts):  # the choices go with the last part
            message["quick_replies"] = [
                {"content_type": "text", "title": label[:QUICK_REPLY_TITLE_MAX], "payload": cid}
                for cid, label in choices
            ]
        bodies.append({"recipient": recipient, "message": message})
    return bodies


def text_parts(text: str, limit: int = TEXT_MAX_BYTES) -> list[str]:
    """The text in parts of at most `limit` UTF-8 bytes (Meta refuses a longer text), cut
    after a line break or a space where one is near the end of a part, never inside a
    character."""
    parts: list[str] = []
    rest = text
    while len(rest.encode("utf-8")) > limit:
        cut = len(rest.encode("utf-8")[:limit].decode("utf-8", errors="ignore"))
        space = max(rest.rfind("\n", 0, cut), rest.rfind(" ", 0, cut))
        if space > cut // 2:
            cut = space + 1
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts


def _attachment_type(url: str) -> str:
    path = urlsplit(url).path.lower()
    if path.endswith((".mp4", ".mov", ".webm", ".avi", ".ogg")):
        return "video"
    if path.endswith((".mp3", ".aac", ".m4a", ".wav")):
        return "audio"
    if path.endswith((".pdf", ".doc", ".docx", ".xls", ".xlsx", ".txt")):
        return "file"
    return "image"


def error_of(response: requests.Response) -> tuple[str, str]:
    """(code, reason) of a Graph error answer: the code (with its subcode, `10/2534022`,
    when there is one) and Meta's message, scrubbed of anything like a number."""
    try:
        error = _dict(_dict(response.json()).get("error"))
    except ValueError:
        return str(response.status_code), ""
    code = str(error.get("code") or response.status_code)
    if error.get("error_subcode"):
        code = f"{code}/{error['error_subcode']}"
    detail = error.get("error_user_msg") or error.get("message") or ""
    return code[:64], scrub(str(detail))


class InstagramProvider(Provider):
    code = CODE
    name = "Instagram (Instagram API with Instagram Login)"
    short_name = "Instagram"
    channel_type = "instagram"
    webhook_path = "instagram"
    reports_edits = True
    setup_note = (
        "From Meta's developer dashboard: your app → Instagram → API setup with Instagram "
        "login. Generate a token for the professional account; its account ID is shown next "
        "to it. Subscribe the webhook fields messages, message_reactions, messaging_seen, "
        "messaging_postbacks and message_edit, with the callback URL shown below."
    )
    settings_fields = (
        ProviderField(
            "instagram_account_id",
            "Instagram account ID",
            "The professional account's Instagram ID (digits), as webhooks name it in "
            "entry.id; the channel's identifier is “instagram:” followed by it.",
            required=True,
            max_length=64,
        ),
        API_BASE_URL,
    )
    secret_fields = (
        ProviderField(
            "access_token",
            "Access token",
            "The account's Instagram user access token (instagram_business_manage_messages).",
            secret=True,
            required=True,
        ),
        ProviderField(
            "app_secret",
            "App secret",
            "Meta app → Instagram → API setup: the Instagram app secret. Checks the signature "
            "of the webhooks; leave empty when the platform's Meta app sends them.",
            secret=True,
        ),
    )

    # -- configuration -------------------------------------------------------------------------

    def identifier_for(self, *, phone_number: str, settings: dict[str, Any]) -> str:
        return account_key(settings.get("instagram_account_id", ""))

    def identity_errors(
        self, *, identifier: str, phone_number: str, settings: Any
    ) -> dict[str, str]:
        """No phone number; the identifier is `instagram:<instagram_account_id>`."""
        errors: dict[str, str] = {}
        if phone_number:
            errors["phone_number"] = "An Instagram channel has no phone number."
        account = str(_dict(settings).get("instagram_account_id") or "")
        if not identifier:
            errors["identifier"] = "This field is required."
        elif identifier != account_key(account):
            errors["identifier"] = "Must be 'instagram:' followed by the Instagram account ID."
        return errors

    def clean(
        self, *, settings: dict[str, Any], secrets: dict[str, Any], exclude_pk: object = None
    ) -> dict[str, str]:
        if not _ACCOUNT_ID.match(str(settings["instagram_account_id"])):
            return {"instagram_account_id": "settings.instagram_account_id must be digits."}
        return {}

    # -- webhooks ------------------------------------------------------------------------------

    def verify_subscription(self, request: HttpRequest) -> HttpResponse | None:
        return meta_subscription_answer(request) or forbidden("no handshake here")

    def verify(self, request: HttpRequest, channel: ChannelInstance | None) -> bool:
        """META_APP_SECRET's signature, or for a channel with its own `app_secret` that one's
        (a tenant's own Meta app signs for its own channels only)."""
        header = request.headers.get("X-Hub-Signature-256", "")
        platform_signed = signature_valid(
            body=request.body, header=header, secret=settings.META_APP_SECRET
        )
        if channel is None:
            return platform_signed
        return own_secret_covers(
            channel, body=request.body, header=header, platform_signed=platform_signed
        )

    def parse(self, request: HttpRequest) -> list[WebhookItem]:
        try:
            payload = clean(json.loads(request.body))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InstagramParseError("The body is not JSON.") from exc
        return parse_payload(payload)

    def lookup(self, keys: set[str]) -> dict[str, ChannelInstance]:
        from channels_app.selectors import channels_by_key

        return channels_by_key(provider=self.code, keys=keys)

    # -- sending -------------------------------------------------------------------------------

    def base_url(self, channel: ChannelInstance) -> str:
        override = (channel.settings or {}).get("api_base_url")
        return str(override or settings.INSTAGRAM_GRAPH_API_URL).rstrip("/")

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """One message (media then text: two requests). Only the first request may be
        repeated (TransientSendError): once a part was accepted, a failure is ambiguous."""
        token = (channel.secrets or {}).get("access_token") or ""
        if not token:
            raise PermanentSendError("The channel has no access token.", code="no_credentials")
        account = str((channel.settings or {}).get("instagram_account_id") or "")
        if not account:
            raise PermanentSendError("The channel has no Instagram account ID.", code="no_account")
        if not payload.to_ig_user_id:
            raise PermanentSendError("The contact has no Instagram-scoped id.", code="no_recipient")
        url = f"{self.base_url(channel)}/{account}/messages"
        bodies = build_messages(payload)
        if not bodies:
            raise PermanentSendError("Nothing to send.", code="empty")
        last_id = ""
        for position, body in enumerate(bodies):
            last_id = self._post(url, token=token, body=body, first=position == 0)
        # The last part's id: a read receipt names the latest message read, which marks the
        # earlier parts (and messages) read through it.
        return SendResult(provider_message_id=last_id, raw_status="accepted")

    def _post(self, url: str, *, token: str, body: dict[str, Any], first: bool) -> str:
        response = send_post(url, body=body, token=token, first=first, who="Instagram")
        if response.status_code >= 400:
            code, detail = error_of(response)
            transient = (
                code.split("/")[0] in TRANSIENT_CODES
                or response.status_code == 429
                or response.status_code >= 500
            )
            if not first:
                raise AmbiguousSendError(detail, code=code, status=response.status_code)
            error = TransientSendError if transient else PermanentSendError
            raise error(detail or f"Instagram answered {response.status_code}.", code=code)
        try:
            return str(response.json()["message_id"])
        except (ValueError, KeyError, TypeError):
            raise AmbiguousSendError(
                "Instagram accepted the request without a message id.", code="no_id"
            ) from None

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        """An attachment's URL, from Meta's CDN only (https, a Meta host)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not any(
            host == allowed or host.endswith(f".{allowed}") for allowed in MEDIA_HOSTS
        ):
            raise MediaDownloadError(
                "media URL is not on Meta's CDN", code="untrusted_host", retryable=False
            )
        try:
            response = http_session().get(
                url,
                timeout=settings.PROVIDER_HTTP_TIMEOUT_SECONDS,
                stream=True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise MediaDownloadError(type(exc).__name__, code="network") from None
        with response:
            if response.status_code != 200:
                raise MediaDownloadError(
                    f"media answered {response.status_code}",
                    status=response.status_code,
                    retryable=response.status_code >= 500,
                )
            content = read_limited(response)
            return MediaFile(content=content, content_type=response.headers.get("Content-Type", ""))
