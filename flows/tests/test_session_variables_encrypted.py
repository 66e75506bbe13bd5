"""Flow session variables (what contacts answered) are encrypted at rest, and the migration
encrypts values stored before."""

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import TextField
from django.db.models.functions import Cast

from flows.models import Flow, FlowSession, SessionStatus
from tests import factories

pytestmark = pytest.mark.django_db


def _session(variables):
    thread = factories.ThreadFactory()
    flow = Flow.objects.create(
        tenant=thread.tenant, channel=thread.channel, flow_id="f", version=1, name="F",
        definition={},
    )  # fmt: skip
    return FlowSession.objects.create(
        tenant=thread.tenant,
        thread=thread,
        flow=flow,
        status=SessionStatus.WAITING,
        variables=variables,
    )


def _raw(session):
    """The column as stored (a cast to text skips the field's decryption)."""
    return (
        FlowSession.objects.filter(pk=session.pk)
        .annotate(raw=Cast("variables", TextField()))
        .values_list("raw", flat=True)
        .get()
    )


def _db_id(value):
    return value if connection.vendor == "postgresql" else value.hex


def test_variables_are_not_stored_in_clear():
    session = _session({"email": "joana.secret@example.org", "age": 31})
    assert "joana" not in _raw(session)
    session.refresh_from_db()
    assert session.variables == {"email": "joana.secret@example.org", "age": 31}


def test_the_migration_encrypts_values_stored_in_clear():
    # given: sessions written before the column was encrypted
    kept = _session({"email": "joana.secret@example.org"})
    empty = _session({})
    with connection.cursor() as cursor:
        cursor.execute("UPDATE flows_flowsession SET variables = %s", ['{"email": "x@y.z"}'])
        cursor.execute(
            "UPDATE flows_flowsession SET variables = %s WHERE thread_id = %s",
            ["{}", _db_id(empty.thread_id)],
        )

    # when
    migration = importlib.import_module("flows.migrations.0003_session_variables_encrypted")
    migration.encrypt_existing(apps, SimpleNamespace(connection=connection))

    # then
    assert "x@y.z" not in _raw(kept)
    kept.refresh_from_db()
    empty.refresh_from_db()
    assert (kept.variables, empty.variables, _raw(empty)) == ({"email": "x@y.z"}, {}, "")
