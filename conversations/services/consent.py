"""Consent (opt-in / opt-out) of a contact, and the keywords a contact writes to change it.
Opt-out stops every automated message."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils import timezone

from conversations.models import ChatThread, Contact, Message
from flows.engine import is_keyword
from flows.selectors import flow_session_language
from flows.services import flow_sessions_interrupt
from integrations import events as webhook_events
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def contact_opt_out(*, contact: Contact, source: str) -> Contact:
    """Record that the contact revoked consent, and from where: "keyword" (the contact wrote
    an opt-out keyword) or "provider:<code>" (the provider reported the recipient
    unsubscribed). Idempotent: while the contact is opted out, the first time and its source
    are kept."""
    if not contact.is_opted_out:
        contact.opted_out_at = timezone.now()
        contact.opt_out_source = source[:50]
        contact.save(update_fields=["opted_out_at", "opt_out_source", "updated_at"])
        webhook_events.contact_opted_out(contact, source=contact.opt_out_source)
    return contact


def contact_opt_in(*, contact: Contact, source: str) -> Contact:
    """Record consent from `source` (e.g. "keyword", "api", "admin"); clears an opt-out."""
    contact.opted_in_at = timezone.now()
    contact.opt_in_source = source[:50]
    contact.opted_out_at = None
    contact.save(update_fields=["opted_in_at", "opt_in_source", "opted_out_at", "updated_at"])
    webhook_events.contact_opted_in(contact, source=contact.opt_in_source)
    return contact


# Sent once after an opt-out / opt-in keyword, in the waiting flow's (else the tenant's)
# language. `{keyword}` is the tenant's first opt-in keyword; the sentence with it is left out
# when the tenant has none.
OPT_OUT_CONFIRMATION = {
    "en": "You have been unsubscribed and will not receive automated messages from us.",
    "pt": "Você não receberá mais mensagens automáticas nossas.",
    "es": "Has cancelado la suscripción y no recibirás más mensajes automáticos.",
}
OPT_OUT_RESUBSCRIBE_HINT = {
    "en": 'Reply "{keyword}" to subscribe again.',
    "pt": 'Responda "{keyword}" para voltar a receber.',
    "es": 'Responde "{keyword}" para suscribirte de nuevo.',
}
OPT_IN_CONFIRMATION = {
    "en": "You are subscribed again. Welcome back!",
    "pt": "Você voltou a receber nossas mensagens. Bem-vindo de volta!",
    "es": "Te has suscrito de nuevo. ¡Bienvenido de vuelta!",
}


@dataclass(frozen=True)
class ConsentAnswer:
    """The confirmation of a consent keyword; `just_opted_out`: the contact revoked consent
    with this message (its confirmation is the one message they still get)."""

    text: str
    just_opted_out: bool


def consent_keyword_apply(*, thread: ChatThread, message: Message) -> ConsentAnswer | None:
    """Apply an opt-out or opt-in keyword in the message; None when it is neither.

    Requires the thread row lock (`process.thread_lock`), the thread loaded with its contact
    and tenant. An opt-out keyword revokes consent, interrupts the waiting flow session and
    is confirmed once, in the waiting flow's language (else the tenant's). An opt-in keyword
    restores consent only for a contact who opted out; from anyone else it is an ordinary
    message ("voltar" is a common menu answer, "start" a common trigger) and None.
    """
    text = message.text or ""
    contact, tenant = thread.contact, thread.tenant
    if text and is_keyword(text, tenant.opt_out_keywords or []):
        was_opted_out = contact.is_opted_out
        language = flow_session_language(thread_id=thread.pk)
        flow_sessions_interrupt(thread=thread, reason="opt_out", now=timezone.now())
        contact_opt_out(contact=contact, source="keyword")
        logger.info("contact opted out by keyword", extra={"chat_thread": str(thread.pk)})
        return ConsentAnswer(
            text=_opt_out_text(tenant, language or _tenant_language(tenant)),
            just_opted_out=not was_opted_out,
        )
    if text and contact.is_opted_out and is_keyword(text, tenant.opt_in_keywords or []):
        contact_opt_in(contact=contact, source="keyword")
        logger.info("contact opted in by keyword", extra={"chat_thread": str(thread.pk)})
        return ConsentAnswer(
            text=_localised(OPT_IN_CONFIRMATION, _tenant_language(tenant)), just_opted_out=False
        )
    return None


def _localised(table: dict[str, str], language: str) -> str:
    return table.get((language or "en").split("-")[0].lower(), table["en"])


def _opt_out_text(tenant: Tenant, language: str) -> str:
    text = _localised(OPT_OUT_CONFIRMATION, language)
    keywords = [k for k in (tenant.opt_in_keywords or []) if isinstance(k, str) and k.strip()]
    if keywords:
        hint = _localised(OPT_OUT_RESUBSCRIBE_HINT, language)
        text = f"{text} {hint.format(keyword=keywords[0].strip().upper())}"
    return text


def _tenant_language(tenant: Tenant) -> str:
    config = getattr(tenant, "config", None)
    return getattr(config, "language", "") or "en"
