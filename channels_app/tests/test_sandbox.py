"""The sandbox provider: sends nothing, then delivered and read on its own through the status
path real callbacks use; impossible without DEBUG or SANDBOX_PROVIDER_ENABLED."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from channels_app.forms import ChannelForm
from channels_app.models import Provider
from channels_app.providers import OutboundPayload, PermanentSendError, get_provider
from channels_app.services import channel_create
from conversations.services import sandbox
from conversations.services.outbound import message_send_agent
from conversations.services.sandbox import sandbox_statuses_advance
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def enabled(settings):
    settings.DEBUG = False
    settings.SANDBOX_PROVIDER_ENABLED = True


@pytest.fixture
def disabled(settings):
    settings.DEBUG = False
    settings.SANDBOX_PROVIDER_ENABLED = False


@pytest.fixture
def thread(tenant):
    channel = factories.SandboxChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(channel=channel)
    factories.MessageFactory(thread=thread)  # the contact wrote: the window is open
    return thread


def _agent_reply(thread, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message = message_send_agent(thread=thread, text="On my way")
    message.refresh_from_db()
    return message


def test_a_send_is_accepted_without_any_network(
    enabled, thread, django_capture_on_commit_callbacks, monkeypatch
):
    def no_network(*args, **kwargs):
        raise AssertionError("the sandbox made a network call")

    monkeypatch.setattr("socket.socket.connect", no_network)
    message = _agent_reply(thread, django_capture_on_commit_callbacks)

    assert message.status == "sent"
    assert message.provider_message_id.startswith("SBX")
    assert message.sent_at is not None and not message.error_code


def test_statuses_advance_a_couple_of_seconds_apart(
    enabled, thread, django_capture_on_commit_callbacks, monkeypatch
):
    # given a sandbox message just sent, and the callbacks' own function watched
    message = _agent_reply(thread, django_capture_on_commit_callbacks)
    calls = []
    real = sandbox.message_status_update
    monkeypatch.setattr(
        sandbox,
        "message_status_update",
        lambda **kw: calls.append(kw["status"].status) or real(**kw),
    )
    sent_at = message.sent_at

    # then nothing moves before two seconds
    assert sandbox_statuses_advance(now=sent_at + timedelta(seconds=1)) == 0
    # delivered two seconds after sent
    assert sandbox_statuses_advance(now=sent_at + timedelta(seconds=2)) == 1
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.delivered_at == sent_at + timedelta(seconds=2)
    # read two seconds after delivered
    assert sandbox_statuses_advance(now=sent_at + timedelta(seconds=3)) == 0
    assert sandbox_statuses_advance(now=sent_at + timedelta(seconds=4)) == 1
    message.refresh_from_db()
    assert message.status == "read" and message.read_at is not None
    # and then nothing more, ever
    assert sandbox_statuses_advance(now=sent_at + timedelta(hours=1)) == 0
    assert calls == ["delivered", "read"]


def test_other_providers_messages_are_never_touched(enabled, twilio_channel):
    thread = factories.ThreadFactory(channel=twilio_channel)
    message = factories.MessageFactory(
        thread=thread,
        direction="outbound",
        sender="flow",
        status="sent",
        provider_message_id="SMabc",
        sent_at=timezone.now() - timedelta(minutes=5),
    )
    assert sandbox_statuses_advance() == 0
    message.refresh_from_db()
    assert message.status == "sent"


def test_disabled_the_sandbox_neither_sends_nor_advances(
    settings, thread, django_capture_on_commit_callbacks
):
    # given a sandbox channel left from a demo, on a server where the sandbox is off
    settings.DEBUG = False
    settings.SANDBOX_PROVIDER_ENABLED = True
    sent = _agent_reply(thread, django_capture_on_commit_callbacks)
    settings.SANDBOX_PROVIDER_ENABLED = False

    # then a send is refused for good
    with pytest.raises(PermanentSendError) as refused:
        get_provider(thread.channel).send(
            channel=thread.channel, payload=OutboundPayload(to_phone="+15550001111", text="x")
        )
    assert refused.value.code == "sandbox_disabled"
    failed = _agent_reply(thread, django_capture_on_commit_callbacks)
    assert failed.status == "failed" and failed.error_code == "sandbox_disabled"
    # and no status moves
    assert sandbox_statuses_advance(now=timezone.now() + timedelta(hours=1)) == 0
    sent.refresh_from_db()
    assert sent.status == "sent"


def test_a_sandbox_channel_cannot_be_created_where_it_is_disabled(disabled, tenant):
    with pytest.raises(ValidationError) as refused:
        channel_create(tenant=tenant, provider=Provider.SANDBOX, phone_number="+15550009999")
    assert "SANDBOX_PROVIDER_ENABLED" in str(refused.value.message_dict["provider"])


def test_debug_alone_enables_it(settings, tenant):
    settings.DEBUG = True
    settings.SANDBOX_PROVIDER_ENABLED = False
    channel = channel_create(tenant=tenant, provider=Provider.SANDBOX, phone_number="+15550009999")
    assert channel.provider == "sandbox" and channel.secrets == {}


def _form(**data):
    return ChannelForm(
        data={"provider": "sandbox", "phone_number": "+15550008888", "is_active": "on", **data}
    )


def test_the_form_offers_the_sandbox_only_where_it_works(settings):
    settings.DEBUG = False
    settings.SANDBOX_PROVIDER_ENABLED = False
    assert "sandbox" not in [value for value, _ in ChannelForm().fields["provider"].choices]
    assert not _form().is_valid()

    settings.SANDBOX_PROVIDER_ENABLED = True
    assert "sandbox" in [value for value, _ in ChannelForm().fields["provider"].choices]
    form = _form(account_sid="AC1", auth_token="ignored")  # other providers' fields ignored
    assert form.is_valid(), form.errors
    channel = form.save_through_services(tenant=factories.TenantFactory())
    assert channel.provider == "sandbox" and channel.secrets == {} and channel.settings == {}
    assert str(channel).endswith("(Sandbox)")
