"""rotate_pii_keys: every encrypted value moves to the first key, resumably, in batches."""

from io import StringIO
from unittest import mock
from uuid import UUID

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from channels_app.models import ChannelInstance
from conversations.models import Contact, Message
from core import rotation
from core.crypto import DecryptionError
from tenants.models import Tenant
from tests import factories

NEW_KEY = Fernet.generate_key().decode()


def _raw_tokens(model, column):
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {connection.ops.quote_name(column)} FROM {table}")  # noqa: S608
        return {UUID(str(pk)): value for pk, value in cursor.fetchall() if value}


def _under(key: str, token: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(token.encode())
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.fixture
def old_data(twilio_channel, cloud_channel):
    """Tenant, channels, contacts and messages written under the old (test) key."""
    contacts = [
        factories.ContactFactory(tenant=twilio_channel.tenant, name=f"Person {n}") for n in range(5)
    ]
    thread = factories.ThreadFactory(channel=twilio_channel, contact=contacts[0])
    messages = [factories.MessageFactory(thread=thread, text=f"text {n}") for n in range(3)]
    deleted = factories.ContactFactory(tenant=twilio_channel.tenant, name="Deleted Person")
    Contact.objects.filter(pk=deleted.pk).soft_delete()
    return {"contacts": contacts + [deleted], "messages": messages}


def _assert_readable_with_new_key_only(old_data, tenant):
    with override_settings(PII_ENCRYPTION_KEYS=[NEW_KEY]):
        names = {c.pk: c.name for c in Contact.all_objects.all()}
        assert names[old_data["contacts"][0].pk] == "Person 0"
        assert names[old_data["contacts"][-1].pk] == "Deleted Person"
        assert {m.text for m in Message.objects.all()} == {"text 0", "text 1", "text 2"}
        assert Tenant.objects.get(pk=tenant.pk).owner_name == "Ana Souza"
        assert {
            c.secrets.get("auth_token") or c.secrets["access_token"]
            for c in ChannelInstance.objects.all()
        } == {
            "chan-token",
            "EAAG-test-token",
        }


@pytest.mark.django_db
def test_rotation_moves_every_value_to_the_first_key(settings, old_data, tenant):
    # given values under the old key, and the new key put first
    old_key = settings.PII_ENCRYPTION_KEYS[0]
    before = _raw_tokens(Contact, "name")
    updated_before = dict(Contact.all_objects.values_list("pk", "updated_at"))
    with pytest.raises(DecryptionError), override_settings(PII_ENCRYPTION_KEYS=[NEW_KEY]):
        list(Contact.objects.values_list("name", flat=True))

    # when
    out = StringIO()
    with override_settings(PII_ENCRYPTION_KEYS=[NEW_KEY, old_key]):
        call_command("rotate_pii_keys", "--batch-size", "2", stdout=out)

    # then every token is under the new key, and the old key alone reads nothing
    after = _raw_tokens(Contact, "name")
    assert after.keys() == before.keys()
    assert all(_under(NEW_KEY, token) and not _under(old_key, token) for token in after.values())
    assert all(_under(NEW_KEY, t) for t in _raw_tokens(Message, "text").values())
    assert all(_under(NEW_KEY, t) for t in _raw_tokens(Tenant, "owner_email").values())
    assert all(_under(NEW_KEY, t) for t in _raw_tokens(ChannelInstance, "secrets").values())
    _assert_readable_with_new_key_only(old_data, tenant)
    # rotation changes no value, so it does not touch updated_at
    assert dict(Contact.all_objects.values_list("pk", "updated_at")) == updated_before
    assert "conversations.Contact: 6 rows scanned" in out.getvalue()
    assert "Done:" in out.getvalue()


def _all_tokens():
    return {
        (model._meta.label, column, pk): token
        for model, column in [
            (ChannelInstance, "secrets"),
            (Contact, "phone"),
            (Contact, "name"),
            (Message, "text"),
            (Tenant, "owner_name"),
        ]
        for pk, token in _raw_tokens(model, column).items()
    }


@pytest.mark.django_db
def test_rotation_interrupted_in_the_middle_resumes(settings, old_data, tenant):
    # given a run that dies inside its second batch (batches of 2 rows: the first batch is
    # the two channels, the second the first two contacts, which fails at its second row)
    old_key = settings.PII_ENCRYPTION_KEYS[0]
    real_rotate_token = rotation.rotate_token
    calls = {"n": 0}

    def dying_rotate_token(token):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("worker killed")
        return real_rotate_token(token)

    # when the first run is interrupted
    with (
        override_settings(PII_ENCRYPTION_KEYS=[NEW_KEY, old_key]),
        mock.patch.object(rotation, "rotate_token", dying_rotate_token),
        pytest.raises(RuntimeError),
    ):
        rotation.rotate_all(batch_size=2)

    # then the first batch is kept and the whole second batch rolled back
    tokens = _all_tokens()
    rotated = {key for key, token in tokens.items() if _under(NEW_KEY, token)}
    assert {key[0] for key in rotated} == {"channels_app.ChannelInstance"}
    assert len(rotated) == 2
    assert all(_under(old_key, token) for key, token in tokens.items() if key not in rotated)

    # when run again
    with override_settings(PII_ENCRYPTION_KEYS=[NEW_KEY, old_key]):
        results = rotation.rotate_all(batch_size=2)

    # then it finishes, without rewriting what the first run rotated
    after = _all_tokens()
    assert all(after[key] == tokens[key] for key in rotated)
    assert all(_under(NEW_KEY, token) for token in after.values())
    by_label = {stats.label: stats for stats in results}
    assert by_label["channels_app.ChannelInstance"].values_rotated == 0
    assert by_label["conversations.Contact"].values_rotated == 12
    _assert_readable_with_new_key_only(old_data, tenant)

    # and a third run has nothing left to do
    with override_settings(PII_ENCRYPTION_KEYS=[NEW_KEY, old_key]):
        assert sum(s.values_rotated for s in rotation.rotate_all(batch_size=2)) == 0


@pytest.mark.django_db
def test_values_no_key_decrypts_are_reported_and_left(settings, old_data):
    # given one value written by a key that is no longer configured
    stranger = Fernet(Fernet.generate_key()).encrypt(b"lost").decode()
    victim = old_data["contacts"][1]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Contact._meta.db_table} SET name = %s WHERE id = %s",  # noqa: S608
            [stranger, victim.pk.hex if connection.vendor == "sqlite" else victim.pk],
        )
    old_key = settings.PII_ENCRYPTION_KEYS[0]

    # when
    with (
        override_settings(PII_ENCRYPTION_KEYS=[NEW_KEY, old_key]),
        pytest.raises(CommandError, match="1 values could not be decrypted"),
    ):
        call_command("rotate_pii_keys", stdout=StringIO())

    # then the rest is rotated and the unreadable value is left untouched
    names = _raw_tokens(Contact, "name")
    assert names.pop(victim.pk) == stranger
    assert all(_under(NEW_KEY, token) for token in names.values())


def test_every_encrypted_field_is_discovered():
    found = {(g.label, f.attname) for g in rotation.encrypted_field_groups() for f in g.fields}
    assert {
        ("tenants.Tenant", "owner_name"),
        ("tenants.Tenant", "owner_email"),
        ("tenants.Tenant", "owner_phone"),
        ("channels_app.ChannelInstance", "secrets"),
        ("conversations.Contact", "phone"),
        ("conversations.Contact", "name"),
        ("conversations.Message", "text"),
    } <= found


@pytest.mark.django_db
def test_bad_batch_size_is_a_command_error():
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("rotate_pii_keys", "--batch-size", "0", stdout=StringIO())


@pytest.mark.django_db
def test_a_column_rewritten_during_rotation_leaves_the_others_rotating(
    settings, twilio_channel, monkeypatch
):
    # given: a contact renamed by the application while rotation works on its row
    from conversations.services.contacts import contact_rename

    old_key = settings.PII_ENCRYPTION_KEYS[0]
    contact = factories.ContactFactory(tenant=twilio_channel.tenant, name="Old Name")
    phone_before = _raw_tokens(Contact, "phone")[contact.pk]
    real_rotate = rotation.rotate_token

    def rotate_while_renamed(token):
        if token == phone_before:
            contact_rename(contact_id=contact.pk, name="New Profile Name")
        return real_rotate(token)

    monkeypatch.setattr(rotation, "rotate_token", rotate_while_renamed)

    # when
    with override_settings(PII_ENCRYPTION_KEYS=[NEW_KEY, old_key]):
        call_command("rotate_pii_keys", stdout=StringIO())

    # then: the phone moved to the new key; the name was written with it by the app
    assert _under(NEW_KEY, _raw_tokens(Contact, "phone")[contact.pk])
    assert _under(NEW_KEY, _raw_tokens(Contact, "name")[contact.pk])
