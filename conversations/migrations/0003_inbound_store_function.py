"""`conversations_inbound_store`: the webhook's ingest as one PostgreSQL function call.

See `conversations.services.inbound_pg`. The function names only the key columns it looks
rows up by; the rows themselves arrive as JSON built from the models' fields and are inserted
with `jsonb_populate_record`, so adding a column to these models needs no change here.
Other databases do not get the function (the ORM path serves them).
"""

from django.db import migrations

CREATE = r"""
CREATE OR REPLACE FUNCTION conversations_inbound_store(
    contact_row jsonb, thread_row jsonb, message_row jsonb, lock_namespace integer
) RETURNS TABLE (
    stored_id uuid, stored_at timestamptz, duplicate_of uuid, in_thread uuid, of_contact uuid,
    stored_name text
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_channel uuid := (message_row->>'channel_id')::uuid;
    v_provider_id text := message_row->>'provider_message_id';
    v_tenant uuid := (contact_row->>'tenant_id')::uuid;
    v_lookup text := contact_row->>'phone_lookup';
    v_new_contact uuid;
    v_new_thread uuid;
    v_now timestamptz;
BEGIN
    -- Each statement below sees what committed before it started (READ COMMITTED), so a
    -- row that a concurrent delivery inserted first is found by the next look.
    IF v_provider_id IS NOT NULL THEN
        SELECT m.id INTO duplicate_of FROM conversations_message m
        WHERE m.channel_id = v_channel AND m.provider_message_id = v_provider_id;
        IF FOUND THEN
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    FOR attempt IN 1..3 LOOP
        SELECT c.id, c.name INTO of_contact, stored_name FROM conversations_contact c
        WHERE c.tenant_id = v_tenant AND c.phone_lookup = v_lookup AND c.deleted_at IS NULL;
        EXIT WHEN FOUND;
        INSERT INTO conversations_contact
        SELECT * FROM jsonb_populate_record(NULL::conversations_contact, contact_row)
        ON CONFLICT (tenant_id, phone_lookup) WHERE deleted_at IS NULL AND phone_lookup IS NOT NULL
        DO NOTHING
        RETURNING id INTO v_new_contact;
        of_contact := v_new_contact;
        EXIT WHEN v_new_contact IS NOT NULL;
    END LOOP;
    IF of_contact IS NULL THEN
        RAISE EXCEPTION 'inbound contact could not be stored';
    END IF;

    FOR attempt IN 1..3 LOOP
        SELECT th.id INTO in_thread FROM conversations_chatthread th
        WHERE th.contact_id = of_contact AND th.channel_id = v_channel AND th.deleted_at IS NULL;
        EXIT WHEN FOUND;
        INSERT INTO conversations_chatthread
        SELECT * FROM jsonb_populate_record(
            NULL::conversations_chatthread, thread_row || jsonb_build_object('contact_id', of_contact)
        )
        ON CONFLICT (contact_id, channel_id) WHERE deleted_at IS NULL DO NOTHING
        RETURNING id INTO v_new_thread;
        in_thread := v_new_thread;
        EXIT WHEN v_new_thread IS NOT NULL;
    END LOOP;
    IF in_thread IS NULL THEN
        RAISE EXCEPTION 'inbound thread could not be stored';
    END IF;

    -- Held until commit and taken before the message's time is read, so the messages of a
    -- thread commit in the order of their created_at. The key is the one core.locks derives
    -- from the thread's UUID, so the ORM path takes the same lock.
    PERFORM pg_advisory_xact_lock(
        lock_namespace,
        (('x' || substr(replace(in_thread::text, '-', ''), 17, 8))::bit(32)::bigint - 2147483648)::integer
    );
    v_now := clock_timestamp();
    INSERT INTO conversations_message
    SELECT * FROM jsonb_populate_record(
        NULL::conversations_message,
        message_row || jsonb_build_object('thread_id', in_thread, 'created_at', v_now, 'updated_at', v_now)
    )
    ON CONFLICT (channel_id, provider_message_id) WHERE provider_message_id IS NOT NULL
    DO NOTHING
    RETURNING id, created_at INTO stored_id, stored_at;
    IF stored_id IS NULL THEN
        -- A concurrent delivery of the same message committed first: keep nothing of ours
        -- (rows this transaction inserted are not visible to anyone else yet).
        DELETE FROM conversations_chatthread WHERE id = v_new_thread;
        DELETE FROM conversations_contact WHERE id = v_new_contact;
        SELECT m.id INTO duplicate_of FROM conversations_message m
        WHERE m.channel_id = v_channel AND m.provider_message_id = v_provider_id;
    END IF;
    RETURN NEXT;
END;
$fn$;
"""

DROP = "DROP FUNCTION IF EXISTS conversations_inbound_store(jsonb, jsonb, jsonb, integer);"


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0002_message_private_data")]

    operations = [migrations.RunPython(create_function, drop_function, elidable=False)]
