"""Why a message was not delivered, in words a staff member can act on.

`explain(code)` turns our own failure codes and the providers' error codes (Twilio's numeric
codes, the Cloud API's `error.code`) into what happened, what to do, and whether sending the
same text again can help (the inbox then offers Retry). A provider code without words of its
own here is explained by its class in the provider outcome table
(`channels_app.providers.outcomes`: retry later, permanent, opt-out, outside the window).
Codes listed nowhere get a generic explanation that still shows the code, for support.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels_app.providers.outcomes import OUTCOMES, Outcome, outcome_of


@dataclass(frozen=True)
class Failure:
    code: str
    what: str
    todo: str
    retry: bool


_WINDOW = (
    "WhatsApp refused a free-form message: more than 24 hours passed since the contact last wrote.",
    "Wait for the contact to write again, or send an approved template.",
    False,
)
_RATE = (
    "The provider is limiting how fast this number may send.",
    "Wait a minute and retry.",
    True,
)
_RECIPIENT = (
    "The number cannot receive WhatsApp messages (not on WhatsApp, or not reachable).",
    "Check the number with the contact by another means.",
    False,
)
_CREDENTIALS = (
    "The channel's credentials were refused or are missing.",
    "Ask an owner to check the channel's credentials, then retry.",
    True,
)
_NETWORK = (
    "The provider could not be reached.",
    "Retry; if it keeps failing, check the channel's status.",
    True,
)

_KNOWN: dict[str, tuple[str, str, bool]] = {
    # ours
    "network": _NETWORK,
    "timeout": (
        "The provider did not answer in time.",
        "Retry; if it keeps failing, check the channel's status.",
        True,
    ),
    "no_credentials": _CREDENTIALS,
    "template_unavailable": (
        "The flow names a WhatsApp template this number does not have approved, or its values "
        "do not fit the template.",
        "Sync the channel's templates, or fix the flow's template name, language or parameters.",
        False,
    ),
    "templates_unavailable": (
        "This channel uses the platform's Twilio credentials, which cannot send its own "
        "WhatsApp templates.",
        "Set the channel's own Twilio account SID and auth token, then sync its templates.",
        False,
    ),
    "templates_unsupported": (
        "This channel's provider cannot send WhatsApp templates.",
        "Use a Twilio or Cloud API channel for templates.",
        False,
    ),
    "untrusted_host": (
        "The channel points at an API host the platform does not trust.",
        "Ask platform staff to check the channel's settings.",
        False,
    ),
    "no_number_id": (
        "The channel has no Cloud API phone number id.",
        "Ask an owner to complete the channel's settings, then retry.",
        True,
    ),
    "no_recipient": (
        "The contact has no number to send to.",
        "Nothing can be sent to this contact.",
        False,
    ),
    "opted_out": (
        "The contact opted out of messages.",
        "Only the contact can opt back in (by writing the opt-in keyword).",
        False,
    ),
    "contact_erased": (
        "The contact's data was erased before the message went out.",
        "Nothing can be sent to this contact.",
        False,
    ),
    "send_unconfirmed": (
        "The provider may or may not have taken the message (the connection broke after it was "
        "sent), so it was not sent again automatically.",
        "Check with the contact whether it arrived before sending it again.",
        True,
    ),
    "no_id": (
        "The provider answered without a message id.",
        "Retry; if it keeps failing, check the channel's status.",
        True,
    ),
    "twilio_error": (
        "Twilio refused the message.",
        "Retry; if it keeps failing, check the channel in Twilio's console.",
        True,
    ),
    # Twilio (https://www.twilio.com/docs/api/errors)
    "63016": _WINDOW,
    "63018": _RATE,
    "20429": _RATE,
    "21610": (
        "The contact unsubscribed from this number (they sent STOP).",
        "Only the contact can opt back in, by sending START (also one of the default opt-in "
        "keywords).",
        False,
    ),
    "63003": _RECIPIENT,
    "63024": _RECIPIENT,
    "21211": _RECIPIENT,
    "21614": _RECIPIENT,
    "30003": _RECIPIENT,
    "30005": _RECIPIENT,
    "30006": _RECIPIENT,
    "30007": (
        "The carrier or WhatsApp filtered the message (spam or policy).",
        "Rephrase it; avoid links and repeated texts.",
        True,
    ),
    "30008": (
        "The provider reported an unknown delivery error.",
        "Retry later.",
        True,
    ),
    "20003": _CREDENTIALS,
    "63007": (
        "Twilio does not know this WhatsApp sender for the account.",
        "Ask an owner to check the channel's number and credentials.",
        False,
    ),
    # WhatsApp Cloud API (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes)
    "131047": _WINDOW,
    "131026": _RECIPIENT,
    "131021": (
        "The contact's number is the business's own number.",
        "Nothing can be sent to this contact from this number.",
        False,
    ),
    "131049": (
        "WhatsApp did not deliver it to keep the ecosystem healthy (too many messages to this "
        "person recently).",
        "Wait before writing again.",
        False,
    ),
    "131048": _RATE,
    "131056": _RATE,
    "130429": _RATE,
    "80007": _RATE,
    "190": _CREDENTIALS,
    "131031": (
        "The WhatsApp Business account is locked or restricted.",
        "Ask an owner to check the account in Meta's Business Manager.",
        False,
    ),
    "368": (
        "Meta temporarily blocked this number for policy reasons.",
        "Ask an owner to check the account in Meta's Business Manager.",
        False,
    ),
    "131051": (
        "WhatsApp does not support this kind of message.",
        "Send it as text instead.",
        False,
    ),
    "131000": (
        "WhatsApp reported an unknown error.",
        "Retry later.",
        True,
    ),
}


_BY_OUTCOME: dict[Outcome, tuple[str, str, bool]] = {
    Outcome.RETRY: _RATE,
    Outcome.OUTSIDE_WINDOW: _WINDOW,
    Outcome.OPT_OUT: (
        "The contact unsubscribed from this number.",
        "Only the contact can opt back in, by sending one of the tenant's opt-in keywords.",
        False,
    ),
    Outcome.PERMANENT: (
        "The provider refused the message and sending it again will not help.",
        "Check the code in the provider's documentation, or ask support with it.",
        False,
    ),
}


def _outcome(code: str) -> Outcome | None:
    """The class of a provider code in the outcome table, whichever provider it is from
    (Twilio's and Meta's codes do not overlap)."""
    for provider in sorted({row.provider for row in OUTCOMES}):
        outcome = outcome_of(provider=provider, code=code)
        if outcome is not None:
            return outcome
    return None


def explain(code: str) -> Failure:
    code = (code or "").strip()
    known = _KNOWN.get(code)
    if known is None and (outcome := _outcome(code)) is not None:
        known = _BY_OUTCOME[outcome]
    if known is None:
        return Failure(
            code=code,
            what="The message could not be delivered"
            + (f" (provider code {code})." if code else "."),
            todo="Retry; if it keeps failing, ask support with the code.",
            retry=True,
        )
    what, todo, retry = known
    return Failure(code=code, what=what, todo=todo, retry=retry)
