"""Consent (opt-in / opt-out) of a contact. Opt-out stops every automated message."""

from django.utils import timezone

from conversations.models import Contact
from integrations import events as webhook_events


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
