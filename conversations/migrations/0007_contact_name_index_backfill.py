"""Computes the name search index of contacts stored before it existed (paging by primary
key, one UPDATE per contact that has a name). Reversing leaves the column as it is: it is
only ever derived from the name."""

from django.db import migrations

from core.crypto import name_index

BATCH = 500


def backfill(apps, schema_editor):
    Contact = apps.get_model("conversations", "Contact")
    last_pk = None
    while True:
        page = Contact._base_manager.exclude(name="").order_by("pk")
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        rows = list(page.only("pk", "name")[:BATCH])
        if not rows:
            return
        for contact in rows:
            value = name_index(contact.name)
            if value:
                Contact._base_manager.filter(pk=contact.pk).update(name_index=value)
        last_pk = rows[-1].pk


class Migration(migrations.Migration):
    dependencies = [("conversations", "0006_inbox")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
