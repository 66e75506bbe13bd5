"""Store WhatsApp Cloud API message ids pseudonymised (core.crypto.provider_id_pseudonym): a
wamid is base64 that contains the contact's phone number. Existing ids, and the ids of replied-to
messages kept in metadata, are rewritten in batches."""

from django.db import migrations

import core.fields
from core.crypto import provider_id_pseudonym

BATCH = 1000


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
            context = (metadata or {}).get("context_id")
            if isinstance(context, str) and provider_id_pseudonym(context) != context:
                changes["metadata"] = {**metadata, "context_id": provider_id_pseudonym(context)}
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
        migrations.RunPython(pseudonymise, migrations.RunPython.noop, elidable=True),
    ]
