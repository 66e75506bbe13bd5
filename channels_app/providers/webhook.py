"""The answers a provider's webhook handling gives, shared by every provider.

The log lines keep the `channels_app.webhooks` logger (where operators look for refusals);
none of them carries a number, a user id or a text.
"""

from __future__ import annotations

import logging

from django.http import HttpResponse

from core import metrics

logger = logging.getLogger("channels_app.webhooks")


def forbidden(reason: str) -> HttpResponse:
    """A 403: the request is not signed by anyone we know (nothing was stored)."""
    logger.warning("webhook refused", extra={"reason": reason})
    return HttpResponse("Forbidden", status=403, content_type="text/plain")


def bad_request(reason: str) -> HttpResponse:
    """A 400 naming what is wrong with the body (never its content)."""
    logger.warning("webhook body rejected", extra={"reason": reason})
    return HttpResponse(f"Bad request: {reason}", status=400, content_type="text/plain")


def skipped(provider: str, reason: str, line: str) -> None:
    """An item deliberately not handled: logged (`line`, a fixed text) and counted."""
    logger.warning(line)
    metrics.inbound_skipped(provider, reason)
