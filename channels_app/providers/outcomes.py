"""What a provider's error code means for the message and the contact: one table.

Every Twilio and WhatsApp Cloud API error code we act on is listed in `OUTCOMES` with one of
four outcomes. The same table decides a synchronous refusal (the provider API's HTTP answer
to a send) and an asynchronous one (a `failed` status callback carrying the code):

- `retry`: the provider is limiting how fast we send, or had a passing fault. The message is
  sent again later with backoff (the send task's retries and `process_pending`), up to
  `MAX_SEND_ATTEMPTS` attempts in all; then it is failed with the code.
- `permanent`: sending the same message again cannot work (bad recipient, template or
  account problem, credentials). The message is failed with the code.
- `opt_out`: the recipient unsubscribed or blocked the business. The message is failed and
  the contact is opted out (source `provider:<code>`), so no automated message follows.
- `outside_window`: more than 24 hours since the contact last wrote; WhatsApp accepts only
  approved templates. The message is failed with that reason (the inbox says so).

A code that is not listed keeps the provider module's own reading of the HTTP answer (429
and 5xx are transient, other 4xx permanent); an unlisted code in a `failed` callback is final.
Codes were checked against the providers' pages: https://www.twilio.com/docs/api/errors/<code>
and https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    RETRY = "retry"
    PERMANENT = "permanent"
    OPT_OUT = "opt_out"
    OUTSIDE_WINDOW = "outside_window"


@dataclass(frozen=True)
class ProviderCode:
    provider: str
    code: str
    outcome: Outcome
    meaning: str


_T, _C = "twilio", "cloud_api"
_R, _P, _O, _W = Outcome.RETRY, Outcome.PERMANENT, Outcome.OPT_OUT, Outcome.OUTSIDE_WINDOW

OUTCOMES: tuple[ProviderCode, ...] = (
    # Twilio (https://www.twilio.com/docs/api/errors)
    ProviderCode(_T, "20429", _R, "Too many requests"),
    ProviderCode(_T, "63018", _R, "Rate limit exceeded for the channel (WhatsApp sender limit)"),
    ProviderCode(_T, "63017", _R, "Rate limit exceeded (account)"),
    ProviderCode(_T, "30001", _R, "Queue overflow"),
    ProviderCode(_T, "21610", _O, "Attempt to send to an unsubscribed recipient"),
    # Blocked by the user: fails this message only. A contact who writes again has unblocked
    # the business, so no opt-out is kept that would outlive the block.
    ProviderCode(_T, "63014", _P, "Channel message blocked by user action (blocked or opted out)"),
    ProviderCode(_T, "63016", _W, "Outside the 24-hour window: a template is needed"),
    ProviderCode(_T, "63003", _P, "The channel could not find the To address"),
    ProviderCode(_T, "63024", _P, "Invalid message recipient"),
    ProviderCode(_T, "21211", _P, "Invalid 'To' phone number"),
    ProviderCode(_T, "21614", _P, "'To' number is not a valid mobile number"),
    ProviderCode(_T, "30003", _P, "Unreachable destination handset"),
    ProviderCode(_T, "30005", _P, "Unknown destination handset"),
    ProviderCode(_T, "30006", _P, "Landline or unreachable carrier"),
    ProviderCode(_T, "30007", _P, "Message filtered (spam or policy)"),
    ProviderCode(_T, "20003", _P, "Authentication failed (credentials)"),
    ProviderCode(_T, "63007", _P, "Twilio could not find a channel with the From address"),
    ProviderCode(_T, "63038", _P, "Account exceeded the daily messages limit"),
    ProviderCode(_T, "21656", _P, "Template: the ContentVariables are invalid"),
    ProviderCode(_T, "63028", _P, "Template: number of parameters does not match"),
    # WhatsApp Cloud API (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)
    ProviderCode(_C, "4", _R, "Application request limit reached"),
    ProviderCode(_C, "80007", _R, "WhatsApp Business Account rate limit reached"),
    ProviderCode(_C, "130429", _R, "Cloud API throughput reached"),
    ProviderCode(_C, "131048", _R, "Spam rate limit hit"),
    ProviderCode(_C, "131056", _R, "Pair rate limit: too many messages to this recipient"),
    ProviderCode(_C, "131000", _R, "Something went wrong (unknown error; Meta: try again)"),
    ProviderCode(_C, "131016", _R, "Service temporarily unavailable"),
    ProviderCode(_C, "133004", _R, "Server temporarily unavailable"),
    # Marketing only: service replies may still go out, so consent is not revoked.
    ProviderCode(_C, "131050", _P, "The user stopped marketing messages from the business"),
    ProviderCode(_C, "131047", _W, "Re-engagement message: more than 24 hours since the reply"),
    ProviderCode(_C, "470", _W, "Outside the support window (legacy code of 131047)"),
    ProviderCode(_C, "131026", _P, "Message undeliverable (not on WhatsApp, old client, terms)"),
    ProviderCode(_C, "131005", _P, "Access denied (permission)"),
    ProviderCode(_C, "131008", _P, "Required parameter is missing"),
    ProviderCode(_C, "131009", _P, "Parameter value is not valid"),
    ProviderCode(_C, "131021", _P, "Recipient cannot be the sender"),
    ProviderCode(_C, "131031", _P, "Business account locked"),
    ProviderCode(_C, "131049", _P, "Not delivered to keep the ecosystem healthy"),
    ProviderCode(_C, "131051", _P, "Unsupported message type"),
    ProviderCode(_C, "131052", _P, "Media download error"),
    ProviderCode(_C, "131053", _P, "Media upload error"),
    ProviderCode(_C, "132000", _P, "Template: number of parameters does not match"),
    ProviderCode(_C, "132001", _P, "Template does not exist"),
    ProviderCode(_C, "132005", _P, "Template: hydrated text too long"),
    ProviderCode(_C, "132007", _P, "Template: format character policy violated"),
    ProviderCode(_C, "132012", _P, "Template: parameter format mismatch"),
    ProviderCode(_C, "132015", _P, "Template is paused"),
    ProviderCode(_C, "132016", _P, "Template is disabled"),
    ProviderCode(_C, "100", _P, "Invalid parameter"),
    ProviderCode(_C, "190", _P, "Access token expired or invalid (credentials)"),
    ProviderCode(_C, "368", _P, "Temporarily blocked for policy violations"),
)

_BY_KEY: dict[tuple[str, str], ProviderCode] = {(row.provider, row.code): row for row in OUTCOMES}


def outcome_of(*, provider: str, code: str) -> Outcome | None:
    """The outcome of `code` from `provider` ("twilio" or "cloud_api"), or None when the
    table does not list it. Other 132xxx codes of the Cloud API are template errors:
    permanent."""
    code = (code or "").strip()
    row = _BY_KEY.get((provider, code))
    if row is not None:
        return row.outcome
    if provider == _C and len(code) == 6 and code.startswith("132") and code.isdigit():
        return Outcome.PERMANENT
    return None
