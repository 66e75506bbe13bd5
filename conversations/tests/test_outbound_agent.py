"""Agent messages: the 24-hour window, validation, sending through the provider."""

from datetime import timedelta

import pytest
import responses
from django.core.exceptions import ValidationError
from django.utils import timezone

from channels_app.tests.webhook_support import run_on_commit
from conversations.models import Message
from conversations.services.outbound import OutsideWindowError, message_send_agent
from tests import factories

pytestmark = pytest.mark.django_db

SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
def thread(tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    return factories.ThreadFactory(channel=channel, last_inbound_at=timezone.now())


@responses.activate
def test_agent_message_inside_the_window_is_sent(thread, staff_user):
    responses.post(TWILIO_URL, json={"sid": "SMagent", "status": "queued"}, status=201)
    with run_on_commit():
        message = message_send_agent(thread=thread, text="  Hi, Ana here.  ", user=staff_user)
    message.refresh_from_db()
    assert (message.sender, message.text, message.sent_by) == ("agent", "Hi, Ana here.", staff_user)
    assert (message.status, message.provider_message_id) == ("sent", "SMagent")
    assert len(responses.calls) == 1


@pytest.mark.parametrize("last_inbound", [None, timedelta(hours=24, seconds=5)])
def test_outside_the_window_is_refused_and_stores_nothing(thread, last_inbound):
    thread.last_inbound_at = None if last_inbound is None else timezone.now() - last_inbound
    thread.save()
    with pytest.raises(OutsideWindowError) as raised:
        message_send_agent(thread=thread, text="Are you still there?")
    assert "24 hours" in str(raised.value)
    assert thread.contact.phone not in str(raised.value)
    assert not Message.objects.exists()


def test_window_counts_a_stored_inbound_message_not_yet_processed(thread):
    # given: the thread's time lags (the message arrived while the flow held the thread)
    thread.last_inbound_at = timezone.now() - timedelta(days=3)
    thread.save()
    factories.MessageFactory(thread=thread, direction="inbound")

    # when / then (the send itself is not run here: on_commit callbacks are not executed)
    assert message_send_agent(thread=thread, text="hello").status == "queued"


@pytest.mark.parametrize("text", ["", "   ", "x" * 4097])
def test_invalid_text_is_refused(thread, text):
    with pytest.raises(ValidationError):
        message_send_agent(thread=thread, text=text)
    assert not Message.objects.exists()


@responses.activate
def test_agent_can_answer_an_opted_out_contact_inside_the_window(thread):
    """Opt-out stops automated messages; a person answering within the window is not one."""
    from conversations.services.consent import contact_opt_out

    contact_opt_out(contact=thread.contact, source="keyword")
    responses.post(TWILIO_URL, json={"sid": "SMagent", "status": "queued"}, status=201)
    with run_on_commit():
        message = message_send_agent(thread=thread, text="Sorry to see you go.")
    message.refresh_from_db()
    assert message.status == "sent"
