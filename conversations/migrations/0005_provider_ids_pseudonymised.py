"""Store WhatsApp Cloud API message ids pseudonymised (core.crypto.provider_id_pseudonym): a
wamid is base64 that contains the contact's phone number. Existing ids, and the ids kept in
metadata (a replied-to message, a provider id conflict), are rewritten in batches.

Irreversible: the raw ids are not kept anywhere, which is the point.
"""

from django.db import migrations

import core.fields
from core.crypto import provider_id_pseudonym

BATCH = 1000
METADATA_IDS = ("context_id", "provider_id_conflict")


def pseudonymise(apps, schema_editor):
    message_model = apps.get_model("conversations", "Message")
    rows = message_model._base_manager.order_by("pk")
    last = None
    while True:
        batch = rows.filter(pk__gt=last) if last is not None else rows
        chunk = list(batch.values_list("pk", "provider_message_id", "metadata")[:BATCH])
        if not chunk:
            return
        for pk, provider_id, metadata in chunk:
            changes = {}
            if provider_id and provider_id_pseudonym(provider_id) != provider_id:
                changes["provider_message_id"] = provider_id  # the field stores the pseudonym
            rewritten = {
                key: provider_id_pseudonym(value)
                for key, value in (metadata or {}).items()
                if key in METADATA_IDS and isinstance(value, str)
            }
            if any(metadata[key] != value for key, value in rewritten.items()):
                changes["metadata"] = {**metadata, **rewritten}
            if changes:
                message_model._base_manager.filter(pk=pk).update(**changes)
        last = chunk[-1][0]


class Migration(migrations.Migration):
    dependencies = [("conversations", "0004_message_fk_indexes_covered")]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="provider_message_id",
            field=core.fields.ProviderIdField(blank=True, max_length=128, null=True),
        ),
        migrations.RunPython(pseudonymise, reverse_code=None, elidable=False),
    ]
