import pytest

from flows.services import FlowRun
from tests import factories

from .webhook_support import TWILIO_NUMBER


@pytest.fixture
def wa_twilio_channel(tenant):
    """A Twilio channel whose number is the `To` of the stored Twilio payloads."""
    return factories.TwilioChannelFactory(tenant=tenant, phone_number=TWILIO_NUMBER)


@pytest.fixture
def no_flow(monkeypatch):
    """Processing without a flow: records the messages the flow saw, answers nothing."""
    seen = []

    def handle(*, thread, message, **_):
        seen.append(message.pk)
        return FlowRun()

    monkeypatch.setattr("conversations.services.process.flow_handle_inbound", handle)
    return seen
