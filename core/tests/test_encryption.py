"""PII is encrypted at rest: raw columns hold no plaintext, keys rotate, bad keys fail loudly."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from conversations.models import Contact, Message
from core.crypto import DecryptionError, blind_index, decrypt_str, encrypt_str, phone_lookup
from tests.factories import ContactFactory, MessageFactory, TenantFactory

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def raw_row(table: str, pk, columns: str) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {table} WHERE id = %s",
            [pk.hex if connection.vendor == "sqlite" else pk],
        )
        return cursor.fetchone()


@pytest.mark.django_db
def test_raw_columns_hold_no_plaintext():
    # given
    contact = ContactFactory(phone="+5511912345678", name="Maria Oliveira")
    message = MessageFactory(
        thread__contact=contact, thread__tenant=contact.tenant, text="my secret text"
    )
    tenant = TenantFactory(owner_name="Owner Person", owner_email="owner@corp.example")

    # when
    contact_raw = " ".join(
        map(str, raw_row("conversations_contact", contact.pk, "phone, name, phone_lookup"))
    )
    message_raw = " ".join(map(str, raw_row("conversations_message", message.pk, "text")))
    tenant_raw = " ".join(
        map(str, raw_row("tenants_tenant", tenant.pk, "owner_name, owner_email, owner_phone"))
    )

    # then
    for plaintext in ("+5511912345678", "5511912345678", "Maria", "Oliveira"):
        assert plaintext not in contact_raw
    assert "secret" not in message_raw
    assert "Owner" not in tenant_raw and "corp.example" not in tenant_raw
    assert Contact.objects.get(pk=contact.pk).phone == "+5511912345678"
    assert Message.objects.get(pk=message.pk).text == "my secret text"


@pytest.mark.django_db
def test_two_keys_decrypt_old_and_new_data_while_the_first_encrypts(settings):
    # given a value written under the old key
    settings.PII_ENCRYPTION_KEYS = [OLD_KEY]
    old_contact = ContactFactory(name="Written with old key")

    # when the new key is put first
    settings.PII_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    new_contact = ContactFactory(name="Written with new key")

    # then both decrypt, and the new value is encrypted with the new key alone
    assert Contact.objects.get(pk=old_contact.pk).name == "Written with old key"
    assert Contact.objects.get(pk=new_contact.pk).name == "Written with new key"
    (raw_name,) = raw_row("conversations_contact", new_contact.pk, "name")
    assert Fernet(NEW_KEY.encode()).decrypt(raw_name.encode()) == b"Written with new key"
    with pytest.raises(Exception):  # noqa: B017 - InvalidToken
        Fernet(OLD_KEY.encode()).decrypt(raw_name.encode())


@pytest.mark.django_db
def test_unknown_key_raises_a_clear_error_without_the_value(settings):
    # given
    settings.PII_ENCRYPTION_KEYS = [OLD_KEY]
    contact = ContactFactory(name="Hidden Name")

    # when only an unrelated key is configured
    settings.PII_ENCRYPTION_KEYS = [NEW_KEY]

    # then reading raises, and the error names the setting but carries no ciphertext or value
    with pytest.raises(DecryptionError) as excinfo:
        Contact.objects.get(pk=contact.pk)
    message = str(excinfo.value)
    assert "PII_ENCRYPTION_KEYS" in message
    assert "Hidden" not in message and "gAAAA" not in message


def test_tampered_token_raises(settings):
    token = encrypt_str("value")
    with pytest.raises(DecryptionError):
        decrypt_str(token[:-4] + "AAAA")
    with pytest.raises(DecryptionError):
        decrypt_str("not-a-token")


def test_blind_index_is_keyed_stable_and_purpose_separated(settings):
    assert phone_lookup("whatsapp:+55 11 91234-5678") == phone_lookup("+5511912345678")
    assert blind_index("+5511912345678", purpose="phone") != blind_index(
        "+5511912345678", purpose="email"
    )
    before = phone_lookup("+5511912345678")
    settings.PII_LOOKUP_KEY = "another-key"
    assert phone_lookup("+5511912345678") != before
    assert "5511912345678" not in before
