"""Twilio's WhatsApp API: form-encoded webhooks signed with `X-Twilio-Signature`, replies
through the REST API (`twilio.rest.Client`), media behind HTTP basic auth.

Docs: https://www.twilio.com/docs/messaging/guides/webhook-request and
https://www.twilio.com/docs/usage/webhooks/webhooks-security.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import requests
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels_app.providers.base import (
    API_BASE_URL,
    AmbiguousSendError,
    FetchedTemplate,
    MediaDownloadError,
    MediaFile,
    OutboundPayload,
    ParsedInbound,
    ParsedLocation,
    ParsedMedia,
    ParsedStatus,
    PermanentSendError,
    Provider,
    ProviderField,
    SendResult,
    TemplateSyncError,
    TransientSendError,
    WebhookReceiver,
    failed_before_sending,
    http_session,
    numbered_choices,
    placeholders,
    read_limited,
    scrub,
)
from channels_app.providers.outcomes import Outcome, outcome_of
from channels_app.providers.webhook import bad_request, forbidden
from channels_app.providers.webhook import logger as webhook_logger
from core import metrics
from core.context import tenant_bound
from core.crypto import normalize_phone, normalize_wa_user_id
from core.storable import clean

if TYPE_CHECKING:
    from channels_app.models import ChannelInstance

STATUS_MAP = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}
# Twilio's MessageType for WhatsApp, mapped to our kinds (media types come from the content type).
MESSAGE_TYPES = {"text": "text", "location": "location", "button": "button"}


class TwilioParseError(ValueError):
    """The form is not a Twilio message or status callback."""


class NotWhatsAppError(TwilioParseError):
    """An incoming message whose `From` or `To` lacks the `whatsapp:` prefix: an SMS (or
    another channel) posted to the WhatsApp webhook. Refused rather than answered on WhatsApp."""


WHATSAPP_PREFIX = "whatsapp:"
# Where Twilio puts the sender's business-scoped user id beside a phone `From` (courier reads
# `ExternalUserId`; Twilio's changelog names `ExternalUserIdentifier`): both are accepted.
EXTERNAL_USER_ID_FIELDS = ("ExternalUserId", "ExternalUserIdentifier")


# Click-to-WhatsApp ad parameters of an incoming message, as the Cloud API names them.
REFERRAL_FIELDS = (
    ("ReferralSourceUrl", "source_url"),
    ("ReferralSourceId", "source_id"),
    ("ReferralSourceType", "source_type"),
    ("ReferralHeadline", "headline"),
    ("ReferralBody", "body"),
    ("ReferralMediaContentType", "media_type"),
    ("ReferralCtwaClid", "ctwa_clid"),
)


def is_whatsapp_address(value: str) -> bool:
    return str(value or "").strip().lower().startswith(WHATSAPP_PREFIX)


def sender_identity(params: Mapping[str, Any]) -> tuple[str, str]:
    """(E.164 phone, WhatsApp user id) of an incoming message's sender, each '' when absent or
    invalid: `From` is `whatsapp:+<digits>` or, for a user without a visible number,
    `whatsapp:<user id>`; the user id may also come beside a phone (EXTERNAL_USER_ID_FIELDS)."""
    sender = str(params.get("From", "") or "")
    address = sender.strip()[len(WHATSAPP_PREFIX) :] if is_whatsapp_address(sender) else ""
    phone = normalize_phone(address) if address.lstrip("+").isdigit() else ""
    user_id = ""
    for name in EXTERNAL_USER_ID_FIELDS:
        user_id = user_id or normalize_wa_user_id(str(params.get(name, "") or ""))
    if not phone and not user_id:
        user_id = normalize_wa_user_id(sender)
    return phone, user_id


def signature_valid(*, url: str, params: Any, signature: str, token: str) -> bool:
    """True when `signature` is Twilio's signature of the URL and parameters with `token`."""
    if not signature or not token:
        return False
    return bool(RequestValidator(token).validate(url, params, signature))


def channel_identifiers(params: Mapping[str, Any]) -> tuple[str, str]:
    """(our number, their number) of a form: `To` for messages, `From` for status callbacks."""
    to, sender = str(params.get("To", "")), str(params.get("From", ""))
    return (sender, to) if is_status_callback(params) else (to, sender)


def is_status_callback(params: Mapping[str, Any]) -> bool:
    status = str(params.get("MessageStatus", "") or "").lower()
    return bool(status) and status != "received"


def _media_type(content_type: str) -> str:
    main = content_type.split(";")[0].strip().lower()
    if main == "image/webp":
        return "sticker"
    for prefix in ("image", "audio", "video"):
        if main.startswith(prefix + "/"):
            return prefix
    return "document"


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise TwilioParseError("Latitude/Longitude are not numbers.") from exc
    if number != number or abs(number) > 180:  # NaN or out of range
        raise TwilioParseError("Latitude/Longitude are out of range.")
    return number


def parse_form(params: Mapping[str, Any]) -> ParsedInbound | ParsedStatus:
    """Parse a Twilio webhook form into an inbound message or a status. Raises TwilioParseError."""
    sid = str(params.get("MessageSid") or params.get("SmsSid") or params.get("SmsMessageSid") or "")
    if not sid or len(sid) > 128:
        raise TwilioParseError("MessageSid is missing or longer than 128 characters.")
    if is_status_callback(params):
        return _parse_status(params, sid)
    phone, user_id = _checked_sender(params)
    media = _media(params)
    body = str(params.get("Body", "") or "")
    raw_type = str(params.get("MessageType", "") or "")
    parts = next(found for kind in MESSAGE_KINDS if (found := kind(params, body, raw_type, media)))
    referral = {key: str(params[name])[:2000] for name, key in REFERRAL_FIELDS if params.get(name)}
    return ParsedInbound(
        provider_message_id=sid,
        from_phone=phone,
        content={"referral": referral} if referral else {},
        from_user_id=user_id,
        kind=parts["kind"],
        text=parts.get("text", body),
        profile_name=str(params.get("ProfileName", "") or "")[:200],
        wa_id=str(params.get("WaId", "") or "") or phone.lstrip("+") or user_id,
        interactive_id=parts.get("interactive_id", "")[:256],
        media=tuple(media),
        location=parts.get("location"),
        raw_type=parts["raw_type"][:50],
        context_id=str(params.get("OriginalRepliedMessageSid", "") or ""),
    )


def _parse_status(params: Mapping[str, Any], sid: str) -> ParsedStatus:
    raw = str(params.get("MessageStatus")).lower()
    return ParsedStatus(
        provider_message_id=sid,
        status=STATUS_MAP.get(raw, ""),
        raw_status=raw,
        error_code=str(params.get("ErrorCode", "") or ""),
        error_detail=scrub(str(params.get("ErrorMessage", "") or "")),
    )


def _checked_sender(params: Mapping[str, Any]) -> tuple[str, str]:
    """The sender of an incoming WhatsApp message (see `sender_identity`); raises
    NotWhatsAppError for another channel's post, TwilioParseError for no usable sender."""
    sender = str(params.get("From", "") or "")
    if not sender.strip():
        raise TwilioParseError("From is missing.")
    if not is_whatsapp_address(sender) or not is_whatsapp_address(str(params.get("To", ""))):
        raise NotWhatsAppError("From and To must be WhatsApp addresses (whatsapp:...).")
    phone, user_id = sender_identity(params)
    if not phone and not user_id:
        raise TwilioParseError("From is neither a phone number nor a WhatsApp user id.")
    return phone, user_id


def _media(params: Mapping[str, Any]) -> list[ParsedMedia]:
    """The form's media (`MediaUrl<n>`/`MediaContentType<n>`, at most 10)."""
    try:
        num_media = int(params.get("NumMedia", 0) or 0)
    except ValueError as exc:
        raise TwilioParseError("NumMedia is not a number.") from exc
    media = []
    for index in range(max(0, min(num_media, 10))):
        url = str(params.get(f"MediaUrl{index}", "") or "")
        content_type = str(params.get(f"MediaContentType{index}", "") or "")
        if url:
            media.append(
                ParsedMedia(
                    media_type=_media_type(content_type), content_type=content_type, url=url
                )
            )
    return media


# -- the message kinds, each a function of the form: its parts when the form is of that kind,
# else None. `MESSAGE_KINDS` tries them in order; text is the last and always matches.

KindParts = dict[str, Any] | None


def _location_kind(params: Mapping[str, Any], body: str, raw_type: str, media: list) -> KindParts:
    if params.get("Latitude") in (None, "") or params.get("Longitude") in (None, ""):
        return None
    location = ParsedLocation(
        latitude=_float(params.get("Latitude")),
        longitude=_float(params.get("Longitude")),
        name=str(params.get("Label", "") or ""),
        address=str(params.get("Address", "") or ""),
    )
    return {"kind": "location", "location": location, "raw_type": raw_type or "location"}


def _button_kind(params: Mapping[str, Any], body: str, raw_type: str, media: list) -> KindParts:
    if not (params.get("ButtonPayload") or params.get("ButtonText")):
        return None
    return {
        "kind": "button",
        "interactive_id": str(params.get("ButtonPayload") or params.get("ButtonText") or ""),
        "text": str(params.get("ButtonText") or body),
        "raw_type": raw_type or "button",
    }


def _list_kind(params: Mapping[str, Any], body: str, raw_type: str, media: list) -> KindParts:
    if not params.get("ListId"):
        return None
    return {
        "kind": "interactive",
        "interactive_id": str(params.get("ListId")),
        "text": str(params.get("ListTitle") or body),
        "raw_type": raw_type or "interactive",
    }


def _media_kind(params: Mapping[str, Any], body: str, raw_type: str, media: list) -> KindParts:
    if not media:
        return None
    return {"kind": media[0].media_type, "raw_type": raw_type or media[0].media_type}


def _unsupported_kind(
    params: Mapping[str, Any], body: str, raw_type: str, media: list
) -> KindParts:
    if not raw_type or raw_type in MESSAGE_TYPES or body:
        return None
    return {"kind": "unsupported", "raw_type": raw_type}


def _text_kind(params: Mapping[str, Any], body: str, raw_type: str, media: list) -> KindParts:
    return {"kind": "text", "raw_type": raw_type or "text"}


MESSAGE_KINDS = (
    _location_kind,
    _button_kind,
    _list_kind,
    _media_kind,
    _unsupported_kind,
    _text_kind,
)


_local = threading.local()


def _http_client() -> TwilioHttpClient:
    """One HTTP client per thread, with the configured timeout, on the thread's pooled
    session for provider APIs (`base.http_session`: no cookies, so nothing crosses from one
    account to another; the environment read once per host)."""
    client = getattr(_local, "http_client", None)
    if client is None:
        client = TwilioHttpClient(timeout=settings.PROVIDER_HTTP_TIMEOUT_SECONDS)
        client.session = http_session()
        _local.http_client = client
    return client


def credentials(channel: ChannelInstance) -> tuple[str, str]:
    """The channel's (account sid, auth token), else the default ones."""
    secrets = channel.secrets or {}
    sid = secrets.get("account_sid") or settings.TWILIO_ACCOUNT_SID
    token = secrets.get("auth_token") or settings.TWILIO_AUTH_TOKEN
    return sid, token


# Twilio serves inbound media from its REST API host whatever TWILIO_API_BASE_URL says.
TWILIO_MEDIA_HOST = "api.twilio.com"


def api_base_url(channel: ChannelInstance) -> str:
    """Where the channel's requests go: its `api_base_url` override only when it carries its
    own credentials, so the default (platform) credentials are only ever sent to
    TWILIO_API_BASE_URL."""
    secrets = channel.secrets or {}
    override = (channel.settings or {}).get("api_base_url") or ""
    if override and secrets.get("account_sid") and secrets.get("auth_token"):
        return str(override).rstrip("/")
    return str(settings.TWILIO_API_BASE_URL).rstrip("/")


def media_url_trusted(channel: ChannelInstance, url: str) -> bool:
    """Whether a media URL from a webhook points at the channel's Twilio API (where Twilio
    keeps media): anything else would have us fetch, with credentials, a URL chosen by
    whoever can sign webhooks for the channel."""
    parsed = urlparse(url)
    trusted = {urlparse(api_base_url(channel)).netloc, TWILIO_MEDIA_HOST}
    return parsed.scheme in ("https", "http") and parsed.netloc in trusted


def auth_token_for(channel: ChannelInstance | None) -> str:
    if channel is None:
        return settings.TWILIO_AUTH_TOKEN
    return credentials(channel)[1]


CONTENT_PAGE_SIZE = 500
MAX_CONTENT_PAGES = 20


def _variable_order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def _content_body(types: Any) -> str:
    """The text a Content resource shows: the `body` of its first type that has one (a
    `twilio/text`, `twilio/quick-reply`, …), else a card's `title`."""
    if not isinstance(types, dict):
        return ""
    for value in types.values():
        if isinstance(value, dict) and isinstance(value.get("body"), str):
            return value["body"]
    for value in types.values():
        if isinstance(value, dict) and isinstance(value.get("title"), str):
            return value["title"]
    return ""


def parse_content(raw: Any) -> FetchedTemplate | None:
    """One entry of the Content API's `GET /v1/ContentAndApprovals` (None without a SID).
    Its WhatsApp approval (`approval_requests`: name, category, status, rejection_reason)
    gives the name, category and status; a content never submitted to WhatsApp has the
    status `unsubmitted`."""
    if not isinstance(raw, dict) or not str(raw.get("sid") or "").startswith("HX"):
        return None
    approval = raw.get("approval_requests")
    approval = approval if isinstance(approval, dict) else {}
    if isinstance(approval.get("whatsapp"), dict):  # the per-channel form of the same object
        approval = approval["whatsapp"]
    variables = raw.get("variables") if isinstance(raw.get("variables"), dict) else {}
    body = _content_body(raw.get("types"))
    names = sorted({*map(str, variables), *placeholders(body)}, key=_variable_order)
    defaults = {str(key): str(value) for key, value in variables.items()}
    return FetchedTemplate(
        name=str(approval.get("name") or raw.get("friendly_name") or raw["sid"])[:512],
        language=str(raw.get("language") or "")[:20],
        category=str(approval.get("category") or "")[:40],
        status=str(approval.get("status") or "unsubmitted").lower()[:40],
        content_sid=str(raw["sid"])[:34],
        body=body,
        components=raw.get("types") if isinstance(raw.get("types"), dict) else {},
        parameters=tuple({"name": name, "default": defaults.get(name, "")} for name in names),
        named=any(not name.isdigit() for name in names),
        rejection_reason=scrub(str(approval.get("rejection_reason") or "")),
    )


def _incomplete(what: str) -> TemplateSyncError:
    return TemplateSyncError(
        f"Twilio's Content API listing is incomplete ({what}); nothing was changed.",
        code="incomplete",
    )


def _content_page(url: str, *, params: dict[str, Any] | None, auth: tuple[str, str]) -> dict:
    try:
        response = http_session().get(
            url, params=params, auth=auth, timeout=settings.PROVIDER_HTTP_TIMEOUT_SECONDS
        )
    except requests.RequestException as exc:
        raise TemplateSyncError(
            f"Twilio's Content API could not be reached ({type(exc).__name__}).", code="network"
        ) from None
    try:
        page = response.json()
    except ValueError:
        page = None
    if response.status_code >= 400:
        error = page if isinstance(page, dict) else {}
        raise TemplateSyncError(
            scrub(str(error.get("message") or f"Twilio answered {response.status_code}.")),
            code=str(error.get("code") or response.status_code),
            status=response.status_code,
        )
    if not isinstance(page, dict):
        raise TemplateSyncError(
            "Twilio's Content API answered something else than JSON.", code="bad_body"
        )
    return page


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def twiml() -> HttpResponse:
    """The empty TwiML answer: received, no reply in the response (replies go through the API)."""
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


class TwilioProvider(Provider):
    code = "twilio"
    name = "Twilio"
    short_name = "Twilio"
    settings_fields = (
        ProviderField(
            "messaging_service_sid",
            "Messaging service SID",
            "Optional (starts with MG): send through a messaging service instead of from the "
            "number.",
        ),
        API_BASE_URL,
    )
    secret_fields = (
        ProviderField(
            "account_sid",
            "Account SID",
            "Twilio console → Account info (starts with AC). Leave both empty to use the "
            "platform's Twilio account.",
            secret=True,
        ),
        ProviderField(
            "auth_token",
            "Auth token",
            "Twilio console → Account info. Also checks the signature of Twilio's webhooks.",
            secret=True,
        ),
    )

    def form_errors(self, *, typed: dict[str, str], stored: dict[str, Any]) -> dict[str, str]:
        """Both credentials or none (the platform's), and an account SID that looks like one."""
        errors = super().form_errors(typed=typed, stored=stored)
        given = [name for name in ("account_sid", "auth_token") if typed.get(name)]
        if len(given) == 1:
            missing = "auth_token" if given == ["account_sid"] else "account_sid"
            if not stored.get(missing):
                errors[missing] = "Set both the account SID and the auth token."
        sid = typed.get("account_sid")
        if sid and not sid.startswith("AC"):
            errors["account_sid"] = "A Twilio account SID starts with AC."
        return errors

    # -- webhooks: form posts signed with X-Twilio-Signature -----------------------------------

    def accepts(self, request: HttpRequest) -> bool:
        """Everything that is not JSON (Twilio posts forms; a post without a signature gets
        its 403 here rather than a 'no provider')."""
        return request.content_type != "application/json"

    def verify(self, request: HttpRequest, channel: ChannelInstance | None) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        url = f"{settings.PUBLIC_BASE_URL}{request.get_full_path()}"
        token = auth_token_for(channel)
        return signature_valid(url=url, params=request.POST, signature=signature, token=token)

    def lookup(self, keys: set[str]) -> dict[str, ChannelInstance]:
        from channels_app.selectors import channels_by_key

        return channels_by_key(provider=self.code, keys=keys)

    def handle_webhook(self, request: HttpRequest, receiver: WebhookReceiver) -> HttpResponse:
        """One message or status callback. The channel is found by our number before the
        signature is checked (with the channel's own auth token, else the platform's)."""
        if not request.headers.get("X-Twilio-Signature", ""):
            return forbidden("missing twilio signature")
        cleaned = {key: clean(value) for key, value in request.POST.items()}
        ours, _theirs = channel_identifiers(cleaned)
        if ours and not is_whatsapp_address(ours):
            # An SMS to a channel's number names it without the prefix: found, so that its
            # signature is checked with the channel's token and the refusal is a clear 400.
            ours = f"{WHATSAPP_PREFIX}{ours.strip()}"
        channel = self.lookup({ours}).get(ours) if ours else None
        # From here on the channel's tenant is in the log lines (a refused signature too: that
        # is how a tenant's wrong auth token shows up); before, and for an unknown number, none.
        with tenant_bound(channel.tenant_id if channel else None):
            return self._handle_for_channel(request, channel, cleaned, receiver)

    def _handle_for_channel(
        self,
        request: HttpRequest,
        channel: ChannelInstance | None,
        cleaned: dict[str, str],
        receiver: WebhookReceiver,
    ) -> HttpResponse:
        if not self.verify(request, channel):
            return forbidden("twilio signature mismatch")
        try:
            parsed = parse_form(cleaned)
        except NotWhatsAppError as exc:
            # An SMS (or another channel) sent to the WhatsApp webhook: not answered on
            # WhatsApp, and not swallowed either (Twilio's debugger shows the 400 and why).
            webhook_logger.warning("twilio post that is not WhatsApp refused")
            metrics.inbound_skipped(self.code, "not_whatsapp")
            return JsonResponse(
                {"error": {"code": "not_whatsapp", "message": str(exc), "details": []}},
                status=400,
            )
        except TwilioParseError as exc:
            return bad_request(str(exc))
        if channel is None or not channel.is_active:
            webhook_logger.warning("twilio webhook for an unknown or inactive channel ignored")
            return twiml()
        return receiver.dispatch(channel, parsed) or twiml()

    # -- sending ---------------------------------------------------------------------------------

    def client(self, channel: ChannelInstance) -> Client:
        """A REST client for the channel, pointed at `api_base_url(channel)` (the `api`
        domain's base URL is the only thing changed)."""
        sid, token = credentials(channel)
        if not sid or not token:
            raise PermanentSendError(
                "Twilio credentials are not configured.", code="no_credentials"
            )
        client = Client(sid, token, http_client=_http_client())
        client.api.base_url = api_base_url(channel)
        return client

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        kwargs = self._addressing(channel, payload)
        kwargs["body"] = numbered_choices(payload.text, payload.choices)
        if payload.media_url:
            kwargs["media_url"] = [payload.media_url]
        return self._create(channel, kwargs)

    def send_template(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        """An approved Content template: `ContentSid` and `ContentVariables` (a JSON object of
        the variables' values), no `Body`."""
        template = payload.template
        assert template is not None
        if reason := self.templates_unavailable(channel=channel):
            raise PermanentSendError(reason, code="templates_unavailable")
        kwargs = self._addressing(channel, payload)
        kwargs["content_sid"] = template.content_sid
        if template.variables:
            kwargs["content_variables"] = json.dumps(dict(template.variables))
        return self._create(channel, kwargs)

    def _addressing(self, channel: ChannelInstance, payload: OutboundPayload) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            # A contact without a visible number is addressed by its user id, as Twilio
            # writes it in `From`: `whatsapp:US.1234…`.
            "to": f"whatsapp:{payload.to_phone or payload.to_user_id}",
            "status_callback": f"{settings.PUBLIC_BASE_URL}/api/webhooks/whatsapp",
        }
        service_sid = (channel.settings or {}).get("messaging_service_sid")
        if service_sid:
            kwargs["messaging_service_sid"] = service_sid
        else:
            kwargs["from_"] = channel.identifier
        return kwargs

    def _create(self, channel: ChannelInstance, kwargs: dict[str, Any]) -> SendResult:
        client = self.client(channel)
        try:
            message = client.messages.create(**kwargs)
        except TwilioRestException as exc:
            code = str(exc.code or exc.status)
            detail = scrub(exc.msg or "")
            listed = outcome_of(provider=self.code, code=code)
            retryable = (
                listed is Outcome.RETRY if listed is not None else _retryable_status(exc.status)
            )
            if retryable:
                raise TransientSendError(detail, code=code, status=exc.status) from None
            raise PermanentSendError(detail, code=code, status=exc.status) from None
        except requests.exceptions.ReadTimeout:
            raise AmbiguousSendError(
                "Twilio did not answer in time; the message may have been accepted.",
                code="timeout",
            ) from None
        except requests.RequestException as exc:
            if failed_before_sending(exc):
                raise TransientSendError(type(exc).__name__, code="network") from None
            raise AmbiguousSendError(
                f"{type(exc).__name__} after the request was sent; it may have been accepted.",
                code="network",
            ) from None
        except TwilioException as exc:
            raise TransientSendError(scrub(str(exc)), code="twilio_error") from None
        return SendResult(provider_message_id=message.sid, raw_status=str(message.status or ""))

    # -- message templates (the Content API) ---------------------------------------------------

    supports_templates = True

    def templates_unavailable(self, *, channel: ChannelInstance) -> str:
        """A channel on the platform's default credentials has no Content templates of its own:
        the platform account's are every tenant's, so they are neither listed nor sent."""
        secrets = channel.secrets or {}
        if secrets.get("account_sid") and secrets.get("auth_token"):
            return ""
        return (
            "The channel uses the platform's Twilio credentials: set its own account SID and "
            "auth token to sync and send its message templates."
        )

    def templates_fetch(self, *, channel: ChannelInstance) -> list[FetchedTemplate]:
        """Every page of the Content API's `GET /v1/ContentAndApprovals`, with the channel's
        own credentials (never the platform's), at TWILIO_CONTENT_API_URL. A listing we cannot
        read to its end (a page without `contents`, a next page on another host, more pages
        than MAX_CONTENT_PAGES) is a TemplateSyncError `incomplete`: nothing is marked gone."""
        if reason := self.templates_unavailable(channel=channel):
            raise TemplateSyncError(reason, code="platform_credentials")
        sid, token = credentials(channel)
        base = str(settings.TWILIO_CONTENT_API_URL).rstrip("/")
        url = f"{base}/v1/ContentAndApprovals"
        params: dict[str, Any] | None = {"PageSize": CONTENT_PAGE_SIZE}
        found: list[FetchedTemplate] = []
        for _page in range(MAX_CONTENT_PAGES):
            page = _content_page(url, params=params, auth=(sid, token))
            contents = page.get("contents")
            if not isinstance(contents, list):
                raise _incomplete("a page without its `contents` list")
            found += [t for t in map(parse_content, contents) if t is not None]
            meta = page.get("meta") if isinstance(page.get("meta"), dict) else {}
            following = str(meta.get("next_page_url") or "")
            if not following:
                return found
            if urlparse(following)[:2] != urlparse(base)[:2]:
                raise _incomplete("a next page on another host (not followed)")
            url, params = following, None
        raise _incomplete(f"more than {MAX_CONTENT_PAGES} pages")

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        if not media_url_trusted(channel, url):
            raise MediaDownloadError(
                "media URL is not on the channel's Twilio API host",
                code="untrusted_host",
                retryable=False,
            )
        sid, token = credentials(channel)
        try:
            response = http_session().get(
                url,
                auth=(sid, token) if sid and token else None,
                timeout=settings.PROVIDER_HTTP_TIMEOUT_SECONDS,
                stream=True,
                allow_redirects=True,
            )
        except requests.RequestException as exc:
            raise MediaDownloadError(type(exc).__name__, code="network") from None
        with response:
            if response.status_code != 200:
                raise MediaDownloadError(
                    f"media answered {response.status_code}", status=response.status_code
                )
            content = read_limited(response)
            return MediaFile(content=content, content_type=response.headers.get("Content-Type", ""))


def parse_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
