"""Drop the single-column indexes on Message.tenant and Message.thread: the (tenant,
created_at) and (thread, created_at) indexes serve those lookups, and every message insert
maintained both for nothing.

Only the indexes are dropped. A plain AlterField would also drop and re-create the foreign
keys, which validates every row of the table under a lock.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "conversations_message_tenant_id_eb27372f": "tenant_id",
    "conversations_message_thread_id_2e6e7032": "thread_id",
}


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0003_inbound_store_function"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="tenant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="tenants.tenant",
                    ),
                ),
                migrations.AlterField(
                    model_name="message",
                    name="thread",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="conversations.chatthread",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f"DROP INDEX IF EXISTS {name}",
                    reverse_sql=f"CREATE INDEX {name} ON conversations_message ({column})",
                )
                for name, column in INDEXES.items()
            ],
        )
    ]
