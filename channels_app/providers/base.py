"""The provider-neutral shapes every WhatsApp provider translates to and from.

A provider module (`twilio.py`, `cloud_api.py`) turns a webhook into `ParsedInbound` and
`ParsedStatus` values and turns an `OutboundPayload` into one API call. Nothing outside
`channels_app.providers` knows a provider's wire format.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests
import urllib3

if TYPE_CHECKING:
    from channels_app.models import ChannelInstance

# What an inbound message is (`Message.kind`). `interactive` is a reply button or list row,
# `button` a template quick reply, `flow_reply` a WhatsApp Flow's answers (interactive
# nfm_reply), `contacts` shared contact cards, `reaction` an emoji on one of our messages,
# `order` a cart sent from a catalog. A click-to-WhatsApp ad referral is context of a message of
# another kind (content `referral`), not a kind. Legacy `voice` is `audio`.
INBOUND_KINDS = (
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "flow_reply",
    "reaction",
    "order",
    "unsupported",
)
# Kinds whose content is personal data (stored encrypted, in `Message.private_data`).
PRIVATE_KINDS = ("location", "contacts", "flow_reply", "order")
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")

# Our statuses, in the order a message moves through them (failed may follow any of them).
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


@dataclass(frozen=True)
class ParsedMedia:
    """One media item of an inbound message. `url` (Twilio) or `provider_media_id` (Cloud API)."""

    media_type: str
    content_type: str = ""
    url: str = ""
    provider_media_id: str = ""
    size_bytes: int | None = None
    filename: str = ""
    sha256: str = ""


@dataclass(frozen=True)
class ParsedLocation:
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""


@dataclass(frozen=True)
class ParsedInbound:
    """An inbound message as every provider describes it.

    The sender is `from_phone` (E.164, or '' when the provider gave none that is a valid
    number) and/or `from_user_id` (a WhatsApp business-scoped user id, or ''); the parsers
    never put anything else in either. `kind` is one of INBOUND_KINDS; `raw_type` is the
    provider's own type name (kept in the message metadata, so an `unsupported` message says
    what it was). `interactive_id` holds the id of a button or list reply (or a template
    quick-reply payload). `content` is the kind's structured content (a contact card list, a
    flow's answers, a reaction, an order, and `referral` for a message that came from an ad);
    `group_id` is set for a message posted in a WhatsApp group.
    """

    provider_message_id: str
    from_phone: str
    kind: str = "text"
    from_user_id: str = ""
    group_id: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    profile_name: str = ""
    wa_id: str = ""
    interactive_id: str = ""
    media: tuple[ParsedMedia, ...] = ()
    location: ParsedLocation | None = None
    raw_type: str = ""
    timestamp: datetime | None = None
    context_id: str = ""


@dataclass(frozen=True)
class ParsedEcho:
    """A message the business sent from the WhatsApp Business app on a number that is also
    connected to the API (coexistence), as the provider echoes it. `to_phone`/`to_user_id`
    name the contact it went to (same rules as ParsedInbound's sender)."""

    provider_message_id: str
    to_phone: str = ""
    to_user_id: str = ""
    kind: str = "text"
    text: str = ""
    raw_type: str = ""
    timestamp: datetime | None = None
    content: dict[str, Any] = field(default_factory=dict)
    media: tuple[ParsedMedia, ...] = ()


@dataclass(frozen=True)
class ParsedUserIdChange:
    """A person's WhatsApp user id changed (Cloud API system message `user_changed_user_id`):
    the contact known by `previous_user_id` is now known by `user_id`."""

    provider_message_id: str
    previous_user_id: str
    user_id: str


@dataclass(frozen=True)
class ParsedStatus:
    """A delivery status of one of our outbound messages.

    `status` is ours (queued, sent, delivered, read, failed); `raw_status` the provider's.
    """

    provider_message_id: str
    status: str
    raw_status: str = ""
    error_code: str = ""
    error_detail: str = ""
    timestamp: datetime | None = None


@dataclass(frozen=True)
class OutboundPayload:
    """What to send: the recipient (an E.164 phone, else a WhatsApp user id in `to_user_id`),
    text, optional media and reply choices."""

    to_phone: str
    text: str = ""
    media_url: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    reference: str = ""  # our message id, for provider-side correlation only
    to_user_id: str = ""  # used only when there is no phone


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    raw_status: str = ""


@dataclass(frozen=True)
class MediaFile:
    content: bytes
    content_type: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderError(Exception):
    """Base of the provider errors. Messages never contain phone numbers, texts or secrets."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class TransientSendError(ProviderError):
    """The provider did not accept the message and trying again later may work."""


class PermanentSendError(ProviderError):
    """The provider refused the message; sending it again will not help."""


class AmbiguousSendError(ProviderError):
    """The request may have reached the provider (e.g. a read timeout): never sent again."""


def failed_before_sending(exc: requests.RequestException) -> bool:
    """Whether a request failed before any of it could reach the provider (no connection, no
    TLS session), so sending it again cannot make a duplicate. A connection dropped after the
    request was written (the provider may have taken the message) is not such a failure."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return True
    if isinstance(exc, requests.exceptions.ProxyError):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", exc.args[0])  # MaxRetryError wraps the cause
        return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)  # incl. refused, DNS
    return False


class MediaDownloadError(ProviderError):
    """The media could not be fetched: the task retries it, unless `retryable` is False
    (another attempt cannot succeed, e.g. a URL we refuse to fetch)."""

    def __init__(
        self, message: str, *, code: str = "", status: int | None = None, retryable: bool = True
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retryable = retryable


_PHONE_LIKE = re.compile(r"\+?\d[\d \-]{5,}\d")


def scrub(text: str, *, limit: int = 500) -> str:
    """A provider error text without anything that looks like a phone number, shortened."""
    return _PHONE_LIKE.sub("[number]", str(text or ""))[:limit]


def numbered_choices(text: str, choices: tuple[tuple[str, str], ...]) -> str:
    """The text followed by the choices as `1. label` lines (for channels without buttons)."""
    if not choices:
        return text
    lines = [f"{position}. {label}" for position, (_id, label) in enumerate(choices, start=1)]
    return f"{text}\n\n" + "\n".join(lines) if text else "\n".join(lines)


class Provider(ABC):
    """Sending and media download for one provider. Webhook parsing lives in the modules."""

    name: str = ""

    @abstractmethod
    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """Send one message. Raises TransientSendError, PermanentSendError or
        AmbiguousSendError; returns the provider's message id when it accepted it."""

    @abstractmethod
    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        """Download inbound media. Raises MediaDownloadError."""


MAX_MEDIA_BYTES = 100 * 1024 * 1024


def read_limited(response: Any) -> bytes:
    """The body of a streamed `requests` response, refused past MAX_MEDIA_BYTES."""
    chunks, total = [], 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        total += len(chunk)
        if total > MAX_MEDIA_BYTES:
            raise MediaDownloadError("media is larger than the limit", code="too_large")
        chunks.append(chunk)
    return b"".join(chunks)
