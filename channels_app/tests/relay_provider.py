"""A minimal provider that lives in the test suite: the proof that adding a provider is one
module and one line in CHANNEL_PROVIDERS (`test_provider_plugin.py`).

"Relay" is an imaginary WhatsApp relay: it posts JSON to its own path (`/api/webhooks/relay`),
`{"to": "whatsapp:+1...", "messages": [{"id", "from", "text"}]}`, signed with
`X-Relay-Signature: <hex HMAC-SHA256 of the body with the channel's signing key>`, and
takes our messages in `RelayProvider.outbox` (its "API", in memory).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from typing import Any

from django.http import HttpRequest

from channels_app.models import ChannelInstance
from channels_app.providers.base import (
    MediaDownloadError,
    MediaFile,
    OutboundPayload,
    ParsedInbound,
    PermanentSendError,
    Provider,
    ProviderField,
    SendResult,
    WebhookItem,
)
from core.crypto import normalize_phone


def relay_signature(body: bytes, key: str) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


class RelayProvider(Provider):
    code = "relay"
    name = "Relay (test provider)"
    short_name = "Relay"
    webhook_path = "relay"
    settings_fields = (ProviderField("relay_account", "Relay account", required=True),)
    secret_fields = (ProviderField("signing_key", "Signing key", secret=True, required=True),)

    outbox: list[dict[str, Any]] = []
    _lock = threading.Lock()

    def verify(self, request: HttpRequest, channel: ChannelInstance | None) -> bool:
        key = (channel.secrets or {}).get("signing_key", "") if channel is not None else ""
        signature = request.headers.get("X-Relay-Signature", "")
        return bool(key and signature) and hmac.compare_digest(
            relay_signature(request.body, key).encode(), signature.encode("utf-8", "replace")
        )

    def parse(self, request: HttpRequest) -> list[WebhookItem]:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("body is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise ValueError("no messages list")
        to = str(body.get("to") or "")
        return [
            (
                to,
                ParsedInbound(
                    provider_message_id=str(raw["id"]),
                    from_phone=normalize_phone(str(raw.get("from") or "")),
                    text=str(raw.get("text") or ""),
                ),
            )
            for raw in body["messages"]
            if isinstance(raw, dict) and raw.get("id")
        ]

    def lookup(self, keys: set[str]) -> dict[str, ChannelInstance]:
        from channels_app.selectors import channels_by_key

        return channels_by_key(provider=self.code, keys=keys)

    def send(self, *, channel: ChannelInstance, payload: OutboundPayload) -> SendResult:
        if not (channel.secrets or {}).get("signing_key"):
            raise PermanentSendError("no signing key", code="no_credentials")
        with self._lock:
            self.outbox.append(
                {
                    "account": channel.settings["relay_account"],
                    "to": payload.to_phone,
                    "text": payload.text,
                    "choices": [label for _id, label in payload.choices],
                }
            )
            return SendResult(provider_message_id=f"RL{len(self.outbox)}", raw_status="sent")

    def fetch_media(self, *, channel: ChannelInstance, url: str, media_id: str) -> MediaFile:
        raise MediaDownloadError("relay has no media", code="no_media", retryable=False)
