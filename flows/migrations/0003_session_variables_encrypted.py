"""Flow session variables hold what contacts answered (emails, dates, free text) and AI answers:
encrypt them at rest like the message texts. The column becomes text; the values already
there are encrypted in place (an empty object becomes '', as EncryptedJSONField stores it)."""

import json

from django.db import migrations

import core.fields
from core.crypto import encrypt_str

BATCH = 500


def encrypt_existing(apps, schema_editor):
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    table, column = quote("flows_flowsession"), quote("variables")
    last = ""
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {column} FROM {table} WHERE CAST(id AS TEXT) > %s "  # noqa: S608
                f"ORDER BY CAST(id AS TEXT) LIMIT %s",
                [last, BATCH],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        with connection.cursor() as cursor:
            for pk, raw in rows:
                value = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
                stored = encrypt_str(json.dumps(value, sort_keys=True)) if value != {} else ""
                cursor.execute(
                    f"UPDATE {table} SET {column} = %s WHERE id = %s",  # noqa: S608
                    [stored, pk],
                )
        last = str(rows[-1][0])


class Migration(migrations.Migration):
    dependencies = [("flows", "0002_flowsession_stale_at")]

    operations = [
        migrations.AlterField(
            model_name="flowsession",
            name="variables",
            field=core.fields.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(encrypt_existing, migrations.RunPython.noop, elidable=False),
    ]
