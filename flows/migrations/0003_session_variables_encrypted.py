"""Flow session variables hold what contacts answered (emails, dates, free text) and AI answers:
encrypt them at rest like the message texts. The column becomes text; the values already
there are encrypted in place (an empty object becomes '', as EncryptedJSONField stores it).
Reversing decrypts them back to JSON before the column becomes JSON again."""

import json

from django.db import migrations

import core.fields
from core.crypto import decrypt_str, encrypt_str

BATCH = 1000


def _rewrite(schema_editor, convert):
    """Pass every row's `variables` through `convert`, in primary-key order (the index), a
    batch per SELECT and one executemany per batch."""
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    table, column = quote("flows_flowsession"), quote("variables")
    last = None
    while True:
        with connection.cursor() as cursor:
            if last is None:
                cursor.execute(
                    f"SELECT id, {column} FROM {table} ORDER BY id LIMIT %s",  # noqa: S608
                    [BATCH],
                )
            else:
                cursor.execute(
                    f"SELECT id, {column} FROM {table} WHERE id > %s "  # noqa: S608
                    f"ORDER BY id LIMIT %s",
                    [last, BATCH],
                )
            rows = cursor.fetchall()
            if not rows:
                return
            cursor.executemany(
                f"UPDATE {table} SET {column} = %s WHERE id = %s",  # noqa: S608
                [(convert(raw), pk) for pk, raw in rows],
            )
        last = rows[-1][0]


def _encrypted(raw):
    value = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
    return encrypt_str(json.dumps(value, sort_keys=True)) if value != {} else ""


def _decrypted(raw):
    return decrypt_str(raw) if raw else "{}"


def encrypt_existing(apps, schema_editor):
    _rewrite(schema_editor, _encrypted)


def decrypt_existing(apps, schema_editor):
    _rewrite(schema_editor, _decrypted)


class Migration(migrations.Migration):
    dependencies = [("flows", "0002_flowsession_stale_at")]

    operations = [
        migrations.AlterField(
            model_name="flowsession",
            name="variables",
            field=core.fields.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing, elidable=False),
    ]
