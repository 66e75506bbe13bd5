"""The Cloud API setting `waba_id` became `business_account_id` (migration 0004)."""

import importlib

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError

from channels_app.services import channel_validate
from tests import factories

pytestmark = pytest.mark.django_db

migration = importlib.import_module("channels_app.migrations.0004_business_account_id")


def test_stored_waba_id_is_renamed_and_an_empty_one_dropped(tenant):
    # given
    renamed = factories.CloudChannelFactory(tenant=tenant)
    renamed.settings = {**renamed.settings, "waba_id": "102290129340398"}
    renamed.save()
    emptied = factories.CloudChannelFactory(tenant=tenant)
    emptied.settings = {**emptied.settings, "waba_id": ""}
    emptied.save()

    # when
    migration.rename(apps, None)

    # then
    renamed.refresh_from_db()
    emptied.refresh_from_db()
    assert renamed.settings["business_account_id"] == "102290129340398"
    assert "waba_id" not in renamed.settings
    assert "waba_id" not in emptied.settings and "business_account_id" not in emptied.settings


def test_the_old_key_is_refused():
    with pytest.raises(ValidationError) as caught:
        channel_validate(
            provider="cloud_api",
            identifier="whatsapp:+15550009999",
            phone_number="+15550009999",
            settings={"phone_number_id": "106540352242999", "waba_id": "1"},
            secrets={"access_token": "x"},
        )
    assert caught.value.message_dict == {"settings": ["Unknown keys: waba_id."]}
