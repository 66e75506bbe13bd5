"""Adding a provider is one module and one line in CHANNEL_PROVIDERS: the Relay provider of
`relay_provider.py` (a module of the test suite, nothing of it in the application) is
installed by the setting alone, gets a channel, a webhook and a whole turn of a flow."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from channels_app.models import ChannelInstance
from channels_app.providers import get_provider, providers
from channels_app.providers.registry import DEFAULT_CHANNEL_PROVIDERS, provider_choices
from channels_app.selectors import channels_memo_clear
from channels_app.services import channel_create
from conversations.models import Message
from flows.services import flow_create

from .relay_provider import RelayProvider, relay_signature
from .test_webhook_conversation import FITNESS
from .webhook_support import run_on_commit

pytestmark = pytest.mark.django_db

WITH_RELAY = [*DEFAULT_CHANNEL_PROVIDERS, "channels_app.tests.relay_provider.RelayProvider"]
KEY = "relay-signing-key"
NUMBER = "+15550007777"


@pytest.fixture
def relay():
    """Relay installed (the registry follows the setting) and its outbox empty."""
    RelayProvider.outbox.clear()
    channels_memo_clear()
    with override_settings(CHANNEL_PROVIDERS=WITH_RELAY):
        yield providers()["relay"]
    channels_memo_clear()


def relay_channel(tenant):
    return channel_create(
        tenant=tenant,
        provider="relay",
        phone_number=NUMBER,
        settings={"relay_account": "acct-1"},
        secrets={"signing_key": KEY},
    )


def post_relay(client, body, *, key=KEY, path="/api/webhooks/relay"):
    raw = json.dumps(body).encode()
    with run_on_commit():
        return client.post(
            path,
            raw,
            content_type="application/json",
            HTTP_X_RELAY_SIGNATURE=relay_signature(raw, key),
        )


def say(text, n):
    return {
        "to": f"whatsapp:{NUMBER}",
        "messages": [{"id": f"rl-in-{n}", "from": "+5521987654321", "text": text}],
    }


def test_the_setting_installs_the_provider_and_nothing_else_names_it(relay, tenant):
    # the registry, the admin's and the API's choices and the channel's label come from it
    assert isinstance(relay, RelayProvider)
    assert ("relay", "Relay (test provider)") in provider_choices()
    channel = relay_channel(tenant)
    assert get_provider(channel) is relay
    assert str(channel).endswith("(Relay)")
    assert channel.get_provider_display() == "Relay (test provider)"


def test_without_the_setting_line_the_provider_does_not_exist(tenant):
    assert "relay" not in providers()
    with pytest.raises(ValidationError) as caught:
        relay_channel(tenant)
    assert "provider" in caught.value.message_dict


def test_its_declared_fields_are_validated_by_the_generic_service(relay, tenant):
    with pytest.raises(ValidationError) as caught:
        channel_create(
            tenant=tenant,
            provider="relay",
            phone_number=NUMBER,
            settings={"relay_account": "", "colour": "red"},
            secrets={"signing_key": KEY, "password": "x"},
        )
    assert caught.value.message_dict == {  # every error, settings and secrets each checked
        "settings": ["Unknown keys: colour.", "settings.relay_account is required for the Relay."],
        "secrets": ["Unknown keys: password."],
    }
    with pytest.raises(ValidationError) as caught:
        channel_create(tenant=tenant, provider="relay", phone_number=NUMBER, settings={})
    assert caught.value.message_dict == {
        "settings": ["settings.relay_account is required for the Relay."]
    }


def test_a_message_runs_end_to_end_through_the_new_provider(relay, client, tenant):
    # given: a Relay channel with the fitness flow
    tenant.name = "Acme Fitness"
    tenant.save()
    channel = relay_channel(tenant)
    flow_create(tenant=tenant, channel=channel, definition=json.loads(FITNESS.read_text()))

    # when: the contact writes twice through Relay's own webhook path
    assert post_relay(client, say("Hello", 1)).status_code == 200
    assert post_relay(client, say("1", 2)).status_code == 200

    # then: the messages are stored on the channel, the flow ran, and its replies went out
    # through Relay (numbered choices: Relay has no buttons)
    inbound = Message.objects.filter(direction="inbound").order_by("created_at")
    assert [m.thread.channel_id for m in inbound] == [channel.pk, channel.pk]
    assert all(m.processed_at is not None for m in inbound)
    assert [m["text"].split("\n")[0] for m in relay.outbox] == [
        "Hi! Welcome to Acme Fitness.",
        "How can we help you today?",
        "Great! Which day suits you? (YYYY-MM-DD)",
    ]
    assert {(m["account"], m["to"]) for m in relay.outbox} == {("acct-1", "+5521987654321")}
    outbound = Message.objects.filter(direction="outbound").order_by("created_at")
    assert [m.provider_message_id for m in outbound] == ["RL1", "RL2", "RL3"]
    assert [m.status for m in outbound] == ["sent"] * 3


def test_its_signature_is_checked_before_anything_is_stored(relay, client, tenant):
    relay_channel(tenant)
    assert post_relay(client, say("Hello", 1), key="wrong-key").status_code == 403
    assert post_relay(client, "not a webhook", key="wrong-key").status_code == 403
    assert not Message.objects.exists()


def test_an_unknown_channel_is_skipped_and_the_path_is_the_providers_own(relay, client, tenant):
    relay_channel(tenant)
    other = dict(say("Hello", 1), to="whatsapp:+15550000000")
    assert post_relay(client, other).status_code == 403  # no channel's key signs it
    assert not Message.objects.exists()
    # the shared endpoint does not hand Relay's posts to Relay (it has no `accepts`) ...
    assert post_relay(client, say("Hello", 1), path="/api/webhooks/whatsapp").status_code == 403
    # ... and without the setting line its path is an unknown API path
    with override_settings(CHANNEL_PROVIDERS=list(DEFAULT_CHANNEL_PROVIDERS)):
        response = post_relay(client, say("Hello", 1))
    assert response.status_code == 404
    assert not ChannelInstance.objects.exclude(provider="relay").exists()


def test_the_admin_form_offers_its_fields_and_validates_them(relay, tenant):
    from channels_app.forms import ChannelForm

    # given: the channel form, with Relay's inputs beside the built-in providers'
    form = ChannelForm(
        data={"provider": "relay", "phone_number": NUMBER, "is_active": "on", "relay_account": ""}
    )
    assert form.fields["signing_key"].widget.attrs["data-channel-provider-field"] == "relay"
    # when / then: its required fields are required by the generic loop
    assert not form.is_valid()
    assert form.errors["relay_account"] == ["Required for the Relay."]
    assert form.errors["signing_key"] == ["Required for the Relay."]
    form = ChannelForm(
        data={
            "provider": "relay",
            "phone_number": NUMBER,
            "is_active": "on",
            "relay_account": "acct-9",
            "signing_key": KEY,
            "account_sid": "AC1",  # another provider's input: ignored
        }
    )
    assert form.is_valid(), form.errors
    channel = form.save_through_services(tenant=tenant)
    assert channel.settings == {"relay_account": "acct-9"}
    assert channel.secrets == {"signing_key": KEY}
