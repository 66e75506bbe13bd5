"""The Cloud API setting `waba_id` is now `business_account_id` (the name issue #15 uses):
stored settings are renamed, so the old key is never accepted or read again."""

from django.db import migrations

OLD, NEW = "waba_id", "business_account_id"


def rename(apps, schema_editor, *, old=OLD, new=NEW):
    ChannelInstance = apps.get_model("channels_app", "ChannelInstance")
    for channel in ChannelInstance.objects.filter(provider="cloud_api").only("pk", "settings"):
        settings = dict(channel.settings or {})
        if old not in settings:
            continue
        value = settings.pop(old)
        if value not in (None, ""):
            settings.setdefault(new, value)
        ChannelInstance.objects.filter(pk=channel.pk).update(settings=settings)


def rename_back(apps, schema_editor):
    rename(apps, schema_editor, old=NEW, new=OLD)


class Migration(migrations.Migration):
    dependencies = [("channels_app", "0003_provider_code_without_choices")]

    operations = [migrations.RunPython(rename, rename_back)]
