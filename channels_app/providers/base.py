"""The provider-neutral shapes every WhatsApp provider translates to and from.

A provider module (`twilio.py`, `cloud_api.py`) turns a webhook into `ParsedInbound` and
`ParsedStatus` values and turns an `OutboundPayload` into one API call. Nothing outside
`channels_app.providers` knows a provider's wire format.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
    # An Instagram-scoped user id (Instagram channels only; then no phone and no user id).
    from_ig_user_id: str = ""
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
class ParsedEdit:
    """A contact changed a message they sent earlier (named by the provider's id): its new
    `text` (`num_edit`: how many times it was edited), or `deleted` (unsent) when the
    contact took it back."""

    provider_message_id: str
    text: str = ""
    num_edit: int = 0
    deleted: bool = False


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
    # A read receipt naming the latest message read (Instagram's `read`): our earlier
    # messages of the conversation were read too.
    cumulative: bool = False


@dataclass(frozen=True)
class TemplateMessage:
    """An approved message template to send, with its placeholders filled.

    The Cloud API names it by `name` + `language`; `parameters` are (component, placeholder,
    value) in the template's order (`named`: the template uses named placeholders, sent with
    their `parameter_name`). Twilio names it by `content_sid`; `variables` are (key, value).
    """

    name: str = ""
    language: str = ""
    parameters: tuple[tuple[str, str, str], ...] = ()
    named: bool = False
    content_sid: str = ""
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OutboundPayload:
    """What to send: the recipient (an E.164 phone, else a WhatsApp user id in `to_user_id`),
    text, optional media and reply choices; or an approved `template` (then `text` is only
    what the template renders to, for our records, and is not sent)."""

    to_phone: str
    text: str = ""
    media_url: str | None = None
    choices: tuple[tuple[str, str], ...] = ()
    reference: str = ""  # our message id, for provider-side correlation only
    to_user_id: str = ""  # used only when there is no phone
    to_ig_user_id: str = ""  # an Instagram-scoped id (Instagram channels only)
    template: TemplateMessage | None = None


@dataclass(frozen=True)
class FetchedTemplate:
    """One message template as a provider lists it (see `Provider.templates_fetch`).
    `parameters` and `named` as `ChannelTemplate` stores them; `status` lower-cased."""

    name: str
    language: str = ""
    category: str = ""
    status: str = ""
    content_sid: str = ""
    provider_template_id: str = ""
    body: str = ""
    components: Any = field(default_factory=list)
    parameters: tuple[dict[str, str], ...] = ()
    named: bool = False
    rejection_reason: str = ""


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """The names of a template text's `{{…}}` placeholders, first appearance order, once each."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(text or "")))


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


class TemplateSyncError(ProviderError):
    """The provider's templates could not be listed (refused, unreachable, not configured)."""


_local = threading.local()


class ProviderSession(requests.Session):
    """A `requests.Session` that reads the environment's proxy and CA settings once per
    scheme and host instead of on every request: requests scans the whole environment for
    `*_proxy` variables each time (`merge_environment_settings`), about a third of the CPU of
    a send. The environment of a process does not change while it runs; explicit per-request
    proxies, `verify` or `cert` bypass the memo."""

    MAX_HOSTS = 256

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[str, dict[str, Any]] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if proxies or stream is not None or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(str(url))
        host = f"{parts.scheme}://{parts.netloc}"
        known = self._environment.get(host)
        if known is None:
            known = super().merge_environment_settings(url, {}, None, None, None)
            if len(self._environment) < self.MAX_HOSTS:
                self._environment[host] = known
        return {**known, "proxies": dict(known["proxies"])}


def http_session() -> requests.Session:
    """This thread's pooled HTTP session for provider APIs (the Graph API's and, through its
    SDK, Twilio's): connections are kept alive and reused across sends (a new TLS connection
    per message costs more than the send itself), the environment read once per host
    (`ProviderSession`).

    Cookies are refused, so nothing one channel's request receives is ever sent with another
    tenant's request; no automatic retries (whether a request may be repeated is the caller's
    decision, see `failed_before_sending`). Timeouts stay per request."""
    session = getattr(_local, "http_session", None)
    if session is None:
        session = ProviderSession()
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        _local.http_session = session
    return session


def send_post(
    url: str, *, body: dict[str, Any], token: str, first: bool, who: str
) -> requests.Response:
    """POST one part of a message to a provider's send API (bearer token, pooled session).

    What a failure means for a second try: no answer in time, or a connection lost after the
    request may have reached the provider, is AmbiguousSendError (never sent again); a
    connection that failed before anything was sent is TransientSendError, for the first part
    only (a later part's earlier parts went out). An HTTP error answer is the caller's to
    read."""
    try:
        return http_session().post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.PROVIDER_HTTP_TIMEOUT_SECONDS,
        )
    except requests.exceptions.ReadTimeout:
        raise AmbiguousSendError(
            f"{who} did not answer in time; the message may have been accepted.",
            code="timeout",
        ) from None
    except requests.RequestException as exc:
        if first and failed_before_sending(exc):
            raise TransientSendError(type(exc).__name__, code="network") from None
        raise AmbiguousSendError(type(exc).__name__, code="network") from None


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


@dataclass(frozen=True)
class ProviderField:
    """One setting or secret a provider's channels carry (`ChannelInstance.settings` or the
    encrypted `secrets`), with what the admin form shows for it. `platform_only`: only
    platform staff may set or change it (where requests go, e.g. `api_base_url`)."""

    key: str
    label: str
    help_text: str = ""
    secret: bool = False
    required: bool = False
    max_length: int | None = None  # None: no limit of ours (the provider's ids vary)
    url: bool = False
    platform_only: bool = False


# The settings every provider that talks to an HTTP API accepts (platform staff only).
API_BASE_URL = ProviderField(
    "api_base_url",
    "API base URL",
    "Platform staff only: send this channel's requests to another host (a proxy or a test "
    "double). Empty: the provider's own API.",
    max_length=500,
    url=True,
    platform_only=True,
)

# Distinct channels (keys) a webhook body not signed by the platform may name: a body signed
# with one tenant's own secret names that tenant's channels, not hundreds.
MAX_TENANT_SIGNED_KEYS = 100

# What a webhook yields: (the key its channel is found by, one parsed item).
WebhookItem = tuple[
    str, "ParsedInbound | ParsedEcho | ParsedUserIdChange | ParsedStatus | ParsedEdit"
]


class WebhookReceiver(Protocol):
    """What the webhook view gives a provider to hand its parsed items on (the provider never
    imports the conversation services). `dispatch` answers a response only when the item is
    a bad request (a sender without any identity)."""

    def dispatch(self, channel: ChannelInstance, item: Any) -> HttpResponse | None: ...


class Provider(ABC):
    """One provider a channel can be connected through: what its channels carry, how its
    webhooks are recognised, verified, parsed and matched to channels, and how it sends.

    `code` is what `ChannelInstance.provider` stores; `name` is shown in the admin and
    `short_name` in a channel's label. A provider is installed by naming its class in
    `settings.CHANNEL_PROVIDERS` (see `registry.py`); only `send` and `fetch_media` must be
    written, the rest has defaults for a provider without webhooks (a test double, the
    sandbox).

    Webhooks: `accepts(request)` says whether a request posted to the shared endpoint
    (`/api/webhooks/whatsapp`) is this provider's; `webhook_path` is a path the provider
    owns alone (`/api/webhooks/<webhook_path>`, a slug). Either way the view calls
    `handle_webhook`, whose default runs `verify` (before anything is stored), `parse`,
    `lookup` and hands each item of a known, active channel to the receiver.
    """

    code: str = ""
    name: str = ""
    short_name: str = ""
    channel_type: str = "whatsapp"
    settings_fields: tuple[ProviderField, ...] = ()
    secret_fields: tuple[ProviderField, ...] = ()
    webhook_path: str = ""
    # Shown above the provider's inputs in the admin (where to find the values).
    setup_note: str = ""
    # Whether its webhooks report a contact's edits and unsends (`ParsedEdit`): one that
    # overtakes its message is kept for it (`conversations.services.receipts`).
    reports_edits: bool = False

    # -- configuration -------------------------------------------------------------------------

    @property
    def settings_keys(self) -> set[str]:
        return {field.key for field in self.settings_fields}

    @property
    def secret_keys(self) -> set[str]:
        return {field.key for field in self.secret_fields}

    @property
    def label(self) -> str:
        return self.short_name or self.name or self.code

    def available(self) -> bool:
        """Whether channels may be created with this provider on this server."""
        return True

    def unavailable_reason(self) -> str:
        return f"The {self.name or self.code} provider is not available on this server."

    def validate(
        self,
        *,
        settings: dict[str, Any] | None,
        secrets: dict[str, Any] | None,
        exclude_pk: object = None,
    ) -> dict[str, list[str]]:
        """Every error, under `settings` or `secrets`, of settings and secrets of this
        provider's shape; each is checked on its own (None: the service found it unusable
        already, so it is not checked again). Unknown keys, required fields missing, values
        too long or not URLs; then, when the settings are right, `clean` for the provider's
        own rules. Messages never repeat a secret's value."""
        errors: dict[str, list[str]] = {}
        if settings is not None and (problems := self.settings_problems(settings)):
            errors["settings"] = problems
        if secrets is not None and (problems := self.secrets_problems(secrets)):
            errors["secrets"] = problems
        if settings is not None and "settings" not in errors:
            usable = secrets if secrets is not None and "secrets" not in errors else {}
            found = self.clean(settings=settings, secrets=usable, exclude_pk=exclude_pk)
            for key, message in found.items():
                where = "secrets" if key == "secrets" or key in self.secret_keys else "settings"
                errors.setdefault(where, []).append(message)
        return errors

    def settings_problems(self, settings: dict[str, Any]) -> list[str]:
        """Every problem of the settings: unknown keys, then per declared field a value that
        is not a URL, missing or too long."""
        problems: list[str] = []
        unknown = sorted(set(settings) - self.settings_keys)
        if unknown:
            problems.append(f"Unknown keys: {', '.join(unknown)}.")
        for item in self.settings_fields:
            value = settings.get(item.key)
            if item.url and value is not None and not _http_url(value):
                problems.append(f"settings.{item.key} must be an http(s) URL.")
            elif item.required and not str(value if value is not None else ""):
                problems.append(f"settings.{item.key} is required for the {self.label}.")
            elif (
                item.max_length is not None
                and value is not None
                and len(str(value)) > item.max_length
            ):
                problems.append(f"settings.{item.key} is longer than {item.max_length} characters.")
        return problems

    def secrets_problems(self, secrets: dict[str, Any]) -> list[str]:
        """Every problem of the secrets (never a value): unknown keys, values not strings."""
        problems: list[str] = []
        unknown = sorted(set(secrets) - self.secret_keys)
        if unknown:
            problems.append(f"Unknown keys: {', '.join(unknown)}.")
        if not all(isinstance(value, str) for value in secrets.values()):
            problems.append("Secret values must be strings.")
        return problems

    def clean(
        self, *, settings: dict[str, Any], secrets: dict[str, Any], exclude_pk: object = None
    ) -> dict[str, str]:
        """The provider's own rules once the shape is right (e.g. a unique number id)."""
        return {}

    def form_errors(self, *, typed: dict[str, str], stored: dict[str, Any]) -> dict[str, str]:
        """Errors by field key for the admin form, which knows which secrets were typed now
        (`typed`, secrets and settings) and which the channel stores already (`stored`): a
        required secret may be kept from before."""
        errors: dict[str, str] = {}
        for item in (*self.settings_fields, *self.secret_fields):
            if item.required and not typed.get(item.key) and not stored.get(item.key):
                errors[item.key] = f"Required for the {self.label}."
        return errors

    def identifier_for(self, *, phone_number: str, settings: dict[str, Any]) -> str:
        """The channel's default identifier."""
        return f"whatsapp:{phone_number}"

    def identity_errors(
        self, *, identifier: str, phone_number: str, settings: Any
    ) -> dict[str, str]:
        """Errors of the channel's identity by field: a WhatsApp channel has an E.164 number
        and the identifier `whatsapp:<number>`."""
        return whatsapp_identity_errors(identifier=identifier, phone_number=phone_number)

    # -- webhooks ------------------------------------------------------------------------------

    def accepts(self, request: HttpRequest) -> bool:
        """Whether a request to the shared webhook endpoint is this provider's."""
        return False

    def verify_subscription(self, request: HttpRequest) -> HttpResponse | None:
        """The answer to a `GET` handshake on this provider's webhook path (None: not one)."""
        return None

    def verify(self, request: HttpRequest, channel: ChannelInstance | None) -> bool:
        """Whether the request is signed for `channel` (None: by the platform's own secret,
        which lets `parse` run). For a channel, say whether its items may be handled: a
        provider whose platform signature covers every channel checks that too."""
        return False

    def parse(self, request: HttpRequest) -> list[WebhookItem]:
        """The items of a verified request. Raises ValueError for a body that is not this
        provider's webhook at all (a 400)."""
        return []

    def lookup(self, keys: set[str]) -> dict[str, ChannelInstance]:
        """This provider's live channels (active or not) by the keys its webhooks name."""
        return {}

    def handle_webhook(self, request: HttpRequest, receiver: WebhookReceiver) -> HttpResponse:
        """Verify, parse, look up and dispatch; 403 before anything is parsed for a request
        not signed by the platform or a channel the items name. Items of an unknown or
        inactive channel, or a channel the signature does not cover, are logged and counted."""
        from channels_app.providers.webhook import bad_request, forbidden, skipped
        from core.context import tenant_bound

        platform_signed = self._verified(request, None)
        try:
            items = self.parse(request)
        except (ValueError, TypeError, RecursionError, UnicodeError, ArithmeticError):
            # A body that is not this provider's webhook (not JSON, nested too deeply, ...):
            # a 400 for a platform-signed one; the exception's text is never echoed.
            if not platform_signed:
                return forbidden(f"{self.code} signature mismatch")
            return bad_request("body is not a valid webhook")
        keys = {key for key, _item in items}
        if not platform_signed and len(keys) > MAX_TENANT_SIGNED_KEYS:
            # Only the platform batches many channels; a body not signed by it must not make
            # us look up (and check signatures for) as many channels as it likes.
            return forbidden(f"{self.code} signature mismatch")
        channels = self.lookup(keys)
        # `verify(request, channel)` decides whether the platform's signature covers a channel
        # (it may not: a channel with its own secret is covered by that secret alone).
        covered = {key for key, ch in channels.items() if self._verified(request, ch)}
        if not covered and not platform_signed:
            return forbidden(f"{self.code} signature mismatch")
        for key, item in items:
            channel = channels.get(key)
            with tenant_bound(channel.tenant_id if channel else None):
                if channel is None or not channel.is_active:
                    skipped(self.code, "unknown_channel", "webhook for an unknown channel skipped")
                elif key not in covered:
                    skipped(self.code, "unsigned", "webhook item not covered by its signature")
                else:
                    receiver.dispatch(channel, item)
        return HttpResponse("OK", content_type="text/plain")

    def _verified(self, request: HttpRequest, channel: ChannelInstance | None) -> bool:
        """`verify`, with a signature it cannot even compare (a non-ASCII header given to
        `hmac.compare_digest` as text) a mismatch rather than a 500."""
        try:
            return self.verify(request, channel)
        except (TypeError, ValueError, UnicodeError):
            return False

    # -- sending -------------------------------------------------------------------------------

    @abstractmethod
    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """Send one message. Raises TransientSendError, PermanentSendError or
        AmbiguousSendError; returns the provider's message id when it accepted it."""

    @abstractmethod
    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        """Download inbound media. Raises MediaDownloadError."""

    # -- message templates (optional) ----------------------------------------------------------

    # Whether the provider has approved templates to sync and send (`templates_fetch`,
    # `send_template`); the periodic sync skips the others.
    supports_templates: bool = False

    def templates_unavailable(self, *, channel: ChannelInstance) -> str:
        """Why the channel may neither sync nor send templates although the provider has
        them (its setup), or "" when it may."""
        return ""

    def templates_fetch(self, *, channel: ChannelInstance) -> list[FetchedTemplate]:
        """Every template the provider lists for the channel. Raises TemplateSyncError."""
        raise TemplateSyncError(
            f"The {self.label} provider has no message templates.", code="templates_unsupported"
        )

    def send_template(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """Send `payload.template`; raises like `send`."""
        raise PermanentSendError(
            f"The {self.label} provider cannot send message templates.",
            code="templates_unsupported",
        )

    def deliver(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """`send_template` for a payload that carries a template, else `send`: what the
        outbound pipeline calls, so a template never goes out as free-form text."""
        if payload.template is not None:
            return self.send_template(channel=channel, payload=payload)
        return self.send(channel=channel, payload=payload)


E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def whatsapp_identity_errors(*, identifier: str, phone_number: str) -> dict[str, str]:
    """A WhatsApp channel's identity rules (see `Provider.identity_errors`)."""
    errors: dict[str, str] = {}
    if not E164.match(phone_number or ""):
        errors["phone_number"] = "Must be an E.164 number such as +14155238886."
    if not identifier:
        errors["identifier"] = "This field is required."
    elif phone_number and identifier != f"whatsapp:{phone_number}":
        errors["identifier"] = "Must be 'whatsapp:' followed by the phone number."
    return errors


def _http_url(value: object) -> bool:
    from django.core.exceptions import ValidationError
    from django.core.validators import URLValidator

    try:
        URLValidator(schemes=["http", "https"])(str(value))
    except ValidationError:
        return False
    return isinstance(value, str) and len(value) <= 500


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
