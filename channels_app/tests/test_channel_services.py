import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from channels_app.models import ChannelInstance
from channels_app.services import channel_create, channel_update


@pytest.mark.django_db
def test_channel_create_twilio_with_encrypted_secrets(tenant):
    channel = channel_create(
        tenant=tenant,
        provider="twilio",
        phone_number="+14155238886",
        secrets={"account_sid": "AC123", "auth_token": "tok-secret"},
    )
    assert channel.identifier == "whatsapp:+14155238886"
    assert ChannelInstance.objects.get(pk=channel.pk).secrets["auth_token"] == "tok-secret"
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM channels_app_channelinstance")
        (raw,) = cursor.fetchone()
    assert "tok-secret" not in raw and "AC123" not in raw


@pytest.mark.django_db
def test_cloud_api_channel_needs_phone_number_id_and_mirrors_it(tenant):
    with pytest.raises(ValidationError) as excinfo:
        channel_create(tenant=tenant, provider="cloud_api", phone_number="+5511999990000")
    assert "settings" in excinfo.value.message_dict
    channel = channel_create(
        tenant=tenant,
        provider="cloud_api",
        phone_number="+5511999990000",
        settings={"phone_number_id": "106540352242922"},
        secrets={"access_token": "EAAG"},
    )
    assert channel.phone_number_id == "106540352242922"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"provider": "sms", "phone_number": "+14155238886"}, "provider"),
        ({"provider": "twilio", "phone_number": "555"}, "phone_number"),
        (
            {"provider": "twilio", "phone_number": "+14155238886", "identifier": "whatsapp:+1"},
            "identifier",
        ),
        ({"provider": "twilio", "phone_number": "+14155238886", "secrets": {"x": "y"}}, "secrets"),
        ({"provider": "twilio", "phone_number": "+14155238886", "settings": []}, "settings"),
    ],
)
def test_bad_channels_are_refused_with_the_field(tenant, kwargs, field):
    with pytest.raises(ValidationError) as excinfo:
        channel_create(tenant=tenant, **kwargs)
    assert field in excinfo.value.message_dict
    assert not ChannelInstance.objects.exists()


@pytest.mark.django_db
def test_identifier_unique_among_live_channels(tenant, other_tenant):
    channel = channel_create(tenant=tenant, provider="twilio", phone_number="+14155238886")
    with pytest.raises(ValidationError):
        channel_create(tenant=other_tenant, provider="twilio", phone_number="+14155238886")
    channel.soft_delete()
    again = channel_create(tenant=other_tenant, provider="twilio", phone_number="+14155238886")
    assert again.pk != channel.pk


@pytest.mark.django_db
def test_channel_update_merges_secrets_and_never_echoes_them(tenant):
    channel = channel_create(
        tenant=tenant,
        provider="twilio",
        phone_number="+14155238886",
        secrets={"account_sid": "AC1", "auth_token": "t1"},
    )
    channel_update(channel=channel, data={"secrets": {"auth_token": "t2"}})
    assert ChannelInstance.objects.get(pk=channel.pk).secrets == {
        "account_sid": "AC1",
        "auth_token": "t2",
    }
    with pytest.raises(ValidationError) as excinfo:
        channel_update(channel=channel, data={"secrets": {"bogus": "t2-secret-value"}})
    assert "t2-secret-value" not in str(excinfo.value)
