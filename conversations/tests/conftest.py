"""Fixtures of the inbox tests."""

import pytest
from django.utils import timezone

from tests import factories


@pytest.fixture
def waiting(tenant):
    """A thread waiting for a human: an inbound text, with a named contact."""
    channel = factories.TwilioChannelFactory(tenant=tenant)
    contact = factories.ContactFactory(tenant=tenant, name="Maria da Silva", phone="+5511988887777")
    thread = factories.ThreadFactory(
        channel=channel, contact=contact, needs_human=True, last_inbound_at=timezone.now()
    )
    factories.MessageFactory(thread=thread, text="Preciso falar com alguém")
    return thread
