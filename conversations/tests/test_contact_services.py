import threading

import pytest
from django.db import connection

from conversations.models import ChatThread, Contact
from conversations.services.contacts import (
    contact_external_id,
    contact_get_or_create,
    contact_rename,
    thread_get_or_create,
)
from conversations.services.privacy import contact_erase
from tests.factories import TenantFactory, TwilioChannelFactory


@pytest.mark.django_db
def test_contact_found_by_blind_index_whatever_the_phone_format(tenant):
    contact, created = contact_get_or_create(tenant=tenant, phone="whatsapp:+5511912345678")
    again, created_again = contact_get_or_create(
        tenant=tenant, phone="+55 11 91234-5678", name="Maria"
    )
    assert created and not created_again
    assert again.pk == contact.pk
    assert Contact.objects.get(pk=contact.pk).name == "Maria"
    assert contact.external_id.startswith("wa_")
    assert "5511912345678" not in contact.external_id
    assert contact.external_id == contact_external_id("5511912345678")


@pytest.mark.django_db
def test_contacts_are_per_tenant(tenant, other_tenant):
    mine, _ = contact_get_or_create(tenant=tenant, phone="+5511912345678")
    theirs, _ = contact_get_or_create(tenant=other_tenant, phone="+5511912345678")
    assert mine.pk != theirs.pk


@pytest.mark.django_db
def test_contact_without_phone_is_refused(tenant):
    with pytest.raises(ValueError):
        contact_get_or_create(tenant=tenant, phone="whatsapp:")


@pytest.mark.django_db
def test_one_live_thread_per_contact_and_channel(tenant):
    channel = TwilioChannelFactory(tenant=tenant)
    contact, _ = contact_get_or_create(tenant=tenant, phone="+5511912345678")
    first, created = thread_get_or_create(contact=contact, channel=channel)
    second, created_again = thread_get_or_create(contact=contact, channel=channel)
    assert created and not created_again and first.pk == second.pk
    first.soft_delete()
    third, created_third = thread_get_or_create(contact=contact, channel=channel)
    assert created_third and third.pk != first.pk


def _race(target, workers: int = 8) -> list:
    barrier = threading.Barrier(workers)
    results: list = []
    errors: list = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_requests_get_one_contact_and_one_thread():
    # given
    tenant = TenantFactory()
    channel = TwilioChannelFactory(tenant=tenant)

    # when eight requests for the same new customer race
    def receive():
        contact, _ = contact_get_or_create(tenant=tenant, phone="+5511912345678", name="Maria")
        thread, _ = thread_get_or_create(contact=contact, channel=channel)
        return contact.pk, thread.pk

    results = _race(receive)

    # then they all saw the same rows
    assert len(set(results)) == 1
    assert Contact.objects.count() == 1
    assert ChatThread.objects.count() == 1


@pytest.mark.django_db
def test_a_profile_name_arriving_after_the_erasure_is_not_stored(tenant):
    # given: a contact erased while one of its messages was being stored
    contact, _ = contact_get_or_create(tenant=tenant, phone="+5511999990000", name="Ana")
    contact_erase(contact=contact)

    # when: that message's profile name is recorded
    contact_rename(contact_id=contact.pk, name="Ana Maria")

    # then: the tombstone keeps no name
    contact.refresh_from_db()
    assert contact.erased_at is not None and contact.name == ""
