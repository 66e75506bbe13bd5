"""The webhooks' channel memo: the process that changes a channel sees it at once, the others
within `STAMP_CHECK_SECONDS`."""

import pytest
from django.core.cache import cache

from channels_app import selectors
from channels_app.models import ChannelInstance
from channels_app.selectors import channel_for_twilio, channels_for_cloud_api
from channels_app.services import channel_update
from tests import factories


@pytest.mark.django_db
def test_a_memoised_channel_is_forgotten_when_it_changes(django_assert_num_queries):
    channel = factories.TwilioChannelFactory()
    assert channel_for_twilio(identifier=channel.identifier).is_active
    with django_assert_num_queries(0):  # memoised
        assert channel_for_twilio(identifier=channel.identifier).pk == channel.pk

    channel_update(channel=channel, data={"is_active": False})

    assert channel_for_twilio(identifier=channel.identifier).is_active is False


@pytest.mark.django_db
def test_unknown_numbers_and_deleted_channels_are_not_found():
    channel = factories.CloudChannelFactory()
    number_id = channel.settings["phone_number_id"]
    assert set(channels_for_cloud_api(phone_number_ids=[number_id, "999"])) == {number_id}
    channel.soft_delete()
    assert channels_for_cloud_api(phone_number_ids=[number_id]) == {}
    assert channel_for_twilio(identifier="whatsapp:+19990000000") is None


@pytest.mark.django_db
def test_a_tenant_change_is_seen_through_the_memo():
    channel = factories.TwilioChannelFactory()
    assert channel_for_twilio(identifier=channel.identifier).tenant.is_active
    channel.tenant.is_active = False
    channel.tenant.save()
    assert channel_for_twilio(identifier=channel.identifier).tenant.is_active is False


@pytest.mark.django_db
def test_a_change_made_by_another_process_is_seen_within_the_stamp_interval(monkeypatch):
    # given: a memoised channel, and a clock this test moves
    now = [1000.0]
    monkeypatch.setattr(selectors.time, "monotonic", lambda: now[0])
    selectors._memo.clear()
    channel = factories.TwilioChannelFactory()
    assert channel_for_twilio(identifier=channel.identifier).is_active

    # when: another process deactivates it (the row and the shared stamp change; this
    # process's memo is not told)
    ChannelInstance.objects.filter(pk=channel.pk).update(is_active=False)
    cache.set(selectors._STAMP_KEY, "changed-elsewhere", timeout=None)

    # then: the memo answers until the stamp is read again, at most STAMP_CHECK_SECONDS later
    assert channel_for_twilio(identifier=channel.identifier).is_active
    now[0] += selectors.STAMP_CHECK_SECONDS
    assert channel_for_twilio(identifier=channel.identifier).is_active is False
