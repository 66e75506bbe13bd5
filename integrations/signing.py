"""The `X-Chatai-Signature` header: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

The key is the endpoint's secret (the whole `whsec_...` string, UTF-8). Receivers recompute
the HMAC over the timestamp, a dot and the raw body bytes, compare in constant time, and
refuse a timestamp too far from their clock (a replayed request). See the README.
"""

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Chatai-Signature"
SECRET_PREFIX = "whsec_"


def secret_generate() -> str:
    """A new signing secret: `whsec_` and 43 URL-safe characters (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
