"""Regressions of the review of the providers-as-plug-ins change: lengths and errors of
`channel_validate`, the registry (lazy, stripped, checked, no lock held while importing),
channels whose provider is gone, webhook bodies and signatures that used to be 500s."""

import json
import threading

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.test import override_settings

from channels_app.forms import ChannelForm
from channels_app.models import ChannelInstance
from channels_app.providers import providers, registry
from channels_app.providers.base import MAX_TENANT_SIGNED_KEYS, ProviderField
from channels_app.providers.registry import DEFAULT_CHANNEL_PROVIDERS
from channels_app.selectors import channels_memo_clear
from channels_app.services import channel_create, channel_update
from conversations.models import Message
from conversations.services.outbound import message_deliver
from tests import factories

from .relay_provider import RelayProvider, relay_signature
from .webhook_support import run_on_commit

pytestmark = pytest.mark.django_db

RELAY = "channels_app.tests.relay_provider.RelayProvider"
WITH_RELAY = [*DEFAULT_CHANNEL_PROVIDERS, RELAY]
KEY = "relay-signing-key"


@pytest.fixture
def relay():
    RelayProvider.outbox.clear()
    channels_memo_clear()
    with override_settings(CHANNEL_PROVIDERS=WITH_RELAY):
        yield providers()["relay"]
    channels_memo_clear()


def relay_channel(tenant, number="+15550007777"):
    return channel_create(
        tenant=tenant,
        provider="relay",
        phone_number=number,
        settings={"relay_account": "acct-1"},
        secrets={"signing_key": KEY},
    )


# -- 1. no default length limit ----------------------------------------------------------------


def test_long_ids_are_accepted_and_such_a_channel_can_be_deactivated(tenant):
    long_id = "9" * 120
    cloud = channel_create(
        tenant=tenant,
        provider="cloud_api",
        phone_number="+5511999990000",
        settings={"phone_number_id": "106540352242922", "business_account_id": long_id},
        secrets={"access_token": "EAAG"},
    )
    twilio = channel_create(
        tenant=tenant,
        provider="twilio",
        phone_number="+14155238886",
        settings={"messaging_service_sid": "MG" + "a" * 100},
    )
    assert channel_update(channel=cloud, data={"is_active": False}).is_active is False
    assert channel_update(channel=twilio, data={"is_active": False}).is_active is False


def test_the_phone_number_id_keeps_its_limit(tenant):
    with pytest.raises(ValidationError) as caught:
        channel_create(
            tenant=tenant,
            provider="cloud_api",
            phone_number="+5511999990000",
            settings={"phone_number_id": "1" * 65},
            secrets={"access_token": "EAAG"},
        )
    assert caught.value.message_dict == {
        "settings": ["settings.phone_number_id is longer than 64 characters."]
    }


# -- 2. every error, settings and secrets independently; clean() when settings are right --------


def test_settings_and_secrets_errors_are_all_reported(tenant):
    with pytest.raises(ValidationError) as caught:
        channel_create(
            tenant=tenant,
            provider="cloud_api",
            phone_number="+5511999990000",
            settings={"phone_number_id": "", "api_base_url": "ftp://x", "colour": 1},
            secrets={"access_token": 5, "pin": "1"},
        )
    assert caught.value.message_dict == {
        "settings": [
            "Unknown keys: colour.",
            "settings.phone_number_id is required for the Cloud API.",
            "settings.api_base_url must be an http(s) URL.",
        ],
        "secrets": ["Unknown keys: pin.", "Secret values must be strings."],
    }


def test_unstorable_secrets_do_not_hide_the_settings_errors(tenant):
    # the provider's clean() (a taken phone number id) runs although the secrets are bad
    factories.CloudChannelFactory(tenant=tenant, settings={"phone_number_id": "777"})
    with pytest.raises(ValidationError) as caught:
        channel_create(
            tenant=tenant,
            provider="cloud_api",
            phone_number="+5511999990000",
            settings={"phone_number_id": "777"},
            secrets={"access_token": "a\x00b"},
        )
    errors = caught.value.message_dict
    assert errors["settings"] == ["Another channel already uses this phone_number_id."]
    assert len(errors["secrets"]) == 1 and "a\x00b" not in errors["secrets"][0]


# -- 3. the registry is loaded lazily, entries stripped, a bad one reported by a check -------------


def test_a_bad_setting_breaks_neither_the_urls_nor_the_health_check(client):
    with override_settings(CHANNEL_PROVIDERS=["no.such.Provider"]):
        assert client.get("/healthz").status_code == 200
        errors = run_checks()
    found = [e for e in errors if e.id == "channels_app.E001"]
    assert len(found) == 1 and "no.such.Provider" in found[0].msg


def test_spaces_around_entries_are_ignored():
    with override_settings(CHANNEL_PROVIDERS=[f"  {DEFAULT_CHANNEL_PROVIDERS[0]} ", "", RELAY]):
        assert list(providers()) == ["twilio", "relay"]


def test_the_api_offers_the_providers_installed_now(relay, api_client):
    from channels_app.api.serializers import ChannelSerializer

    assert "relay" in ChannelSerializer().fields["provider"].choices


class _SamePath(RelayProvider):
    code = "relay2"


class _Clobbering(RelayProvider):
    code = "clobber"
    webhook_path = "clobber"
    settings_fields = (ProviderField("is_active", "Active"),)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (f"{__name__}._SamePath", "both claim the webhook path 'relay'"),
        (f"{__name__}._Clobbering", "named like the channel's own: is_active"),
    ],
)
def test_the_check_refuses_a_shared_webhook_path_and_clobbering_fields(extra, words):
    with override_settings(CHANNEL_PROVIDERS=[*WITH_RELAY, extra]):
        messages = [e.msg for e in run_checks() if e.id == "channels_app.E001"]
    assert len(messages) == 1 and words in messages[0]


# -- 4. no lock held while a provider module is imported ----------------------------------------


def test_a_provider_that_asks_for_the_registry_while_loading_does_not_deadlock(monkeypatch):
    # given: loading the providers asks for the registry (a module importing code that uses it)
    real_load = registry._load
    inner: list[object] = []

    def load_that_reenters():
        if not inner:
            inner.append(None)
            inner.append(registry.providers())
        return real_load()

    monkeypatch.setattr(registry, "_load", load_that_reenters)
    registry._forget()
    # when
    worker = threading.Thread(target=registry.providers, daemon=True)
    worker.start()
    worker.join(timeout=10)
    # then
    assert not worker.is_alive()
    assert {"twilio", "cloud_api", "sandbox"} <= set(inner[1])  # type: ignore[arg-type]
    registry._forget()


# -- 5. the admin changelist shows names -----------------------------------------------------------


def test_the_changelist_shows_the_providers_name(admin_client, tenant):
    factories.CloudChannelFactory(tenant=tenant)
    ChannelInstance.objects.create(
        tenant=tenant,
        provider="gone",
        identifier="whatsapp:+15550001111",
        phone_number="+15550001111",
    )
    page = admin_client.get("/admin/channels_app/channelinstance/").content.decode()
    assert "WhatsApp Cloud API" in page
    assert "gone (not installed)" in page


# -- 6. a channel whose provider is gone -----------------------------------------------------------


def orphan(tenant):
    return ChannelInstance.objects.create(
        tenant=tenant,
        provider="gone",
        identifier="whatsapp:+15550001111",
        phone_number="+15550001111",
        settings={"account": "kept"},
        secrets={"token": "kept-secret"},
    )


def test_a_channel_whose_provider_is_gone_can_be_deactivated(tenant):
    channel = orphan(tenant)
    channel_update(channel=channel, data={"is_active": False})
    channel.refresh_from_db()
    assert channel.is_active is False
    assert channel.settings == {"account": "kept"}
    assert channel.secrets == {"token": "kept-secret"}
    with pytest.raises(ValidationError):  # another unknown provider is still refused
        channel_update(channel=channel, data={"provider": "other"})


def test_the_admin_form_edits_it_and_keeps_its_settings(tenant):
    channel = orphan(tenant)
    form = ChannelForm(
        instance=channel,
        data={"provider": "gone", "phone_number": "+15550001111", "identifier": ""},
    )
    assert form.is_valid(), form.errors
    form.save_through_services(tenant=tenant)
    channel.refresh_from_db()
    assert channel.is_active is False
    assert channel.settings == {"account": "kept"}
    assert channel.secrets == {"token": "kept-secret"}


def test_a_reply_through_it_fails_permanently_with_the_reason(tenant):
    channel = orphan(tenant)
    thread = factories.ThreadFactory(channel=channel, tenant=tenant)
    message = factories.MessageFactory(
        thread=thread, direction="outbound", status="queued", sender="flow"
    )
    assert message_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.status == "failed"
    assert message.error_code == "provider_not_installed"
    assert "not installed" in message.error_detail


# -- 7. bad bodies and signatures are 4xx, never a 500, never echoed ---------------------------


def post_relay(client, raw, *, signature=None, path="/api/webhooks/relay"):
    with run_on_commit():
        return client.post(
            path,
            raw,
            content_type="application/json",
            HTTP_X_RELAY_SIGNATURE=signature
            if signature is not None
            else relay_signature(raw, KEY),
        )


def test_a_deeply_nested_body_is_refused_without_a_500(relay, client, tenant, monkeypatch):
    relay_channel(tenant)
    raw = b"[" * 100_000 + b"]" * 100_000
    assert post_relay(client, raw).status_code == 403  # no channel's signature covers it
    # signed with the platform's own secret (Relay has none: say it is): a 400 that does
    # not echo the exception
    monkeypatch.setattr(RelayProvider, "verify", lambda self, request, channel: channel is None)
    response = post_relay(client, raw)
    assert response.status_code == 400
    assert response.content == b"Bad request: body is not a valid webhook"
    assert not Message.objects.exists()


def test_a_non_ascii_signature_is_a_403(relay, client, tenant):
    relay_channel(tenant)
    raw = json.dumps({"to": "whatsapp:+15550007777", "messages": []}).encode()
    response = client.post(
        "/api/webhooks/relay",
        raw,
        content_type="application/json",
        headers={"X-Relay-Signature": "é" * 64},
    )
    assert response.status_code == 403


def test_a_non_ascii_hub_signature_is_a_403(client, tenant):
    factories.CloudChannelFactory(tenant=tenant)
    response = client.post(
        "/api/webhooks/whatsapp",
        b'{"object": "whatsapp_business_account", "entry": []}',
        content_type="application/json",
        headers={"X-Hub-Signature-256": "sha256=" + "é" * 64},
    )
    assert response.status_code == 403


# -- 8. a body not signed by the platform names few channels -----------------------------------


def test_an_unsigned_body_naming_too_many_channels_is_refused(relay, client, tenant, monkeypatch):
    relay_channel(tenant)
    looked_up: list[int] = []
    real_lookup = RelayProvider.lookup
    monkeypatch.setattr(
        RelayProvider,
        "lookup",
        lambda self, keys: looked_up.append(len(keys)) or real_lookup(self, keys),
    )
    many = [
        {"to": f"whatsapp:+1555{n:07d}", "id": f"m{n}", "from": "+5521987654321", "text": "x"}
        for n in range(MAX_TENANT_SIGNED_KEYS + 1)
    ]
    raw = json.dumps({"to": "whatsapp:+15550007777", "messages": many}).encode()
    assert post_relay(client, raw).status_code == 200  # one key (`to`): within the cap
    # a provider whose items name more keys than the cap
    monkeypatch.setattr(
        RelayProvider,
        "parse",
        lambda self, request: [(m["to"], None) for m in many],
    )
    looked_up.clear()
    assert post_relay(client, raw).status_code == 403
    assert looked_up == []  # refused before any lookup


# -- 9. a GET that is not Meta's handshake is left to others --------------------------------------


def test_the_cloud_api_answers_only_its_own_handshake(rf):
    from channels_app.providers.cloud_api import CloudApiProvider

    provider = CloudApiProvider()
    assert provider.verify_subscription(rf.get("/api/webhooks/whatsapp")) is None
    wrong = rf.get("/api/webhooks/whatsapp", {"hub.mode": "subscribe", "hub.verify_token": "x"})
    assert provider.verify_subscription(wrong).status_code == 403
    right = rf.get(
        "/api/webhooks/whatsapp",
        {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "42"},
    )
    assert provider.verify_subscription(right).content == b"42"
