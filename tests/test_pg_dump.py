"""A dump of the database holds no contact phone, name, email or message text in clear."""

import shutil
import subprocess

import pytest
from django.db import connection

from flows.models import Flow, FlowSession, SessionStatus
from tests.factories import ContactFactory, MessageFactory, TenantFactory, ThreadFactory

# A Cloud API message id is base64 that holds the sender's WhatsApp number.
WAMID = "wamid.HBgNNTUxMTk3Nzc3NjY2NhUCABIYFDNBMEQ2OTk5RjdCNzQ3QjZFQzQ1AA=="
PII = [
    "+5511977776666",
    "5511977776666",
    "Joana Pereira",
    "joana@example.com",
    "meu cartão 4111",
    WAMID.removeprefix("wamid."),
]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_pg_dump_contains_no_pii_in_clear():
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    # given
    tenant = TenantFactory(owner_name="Joana Pereira", owner_email="joana@example.com")
    contact = ContactFactory(tenant=tenant, phone="+5511977776666", name="Joana Pereira")
    thread = ThreadFactory(contact=contact, channel__tenant=tenant, tenant=tenant)
    MessageFactory(thread=thread, text="meu cartão 4111")
    # what the contact typed into a flow, and a WhatsApp id (base64 holding the phone)
    flow = Flow.objects.create(
        tenant=tenant, channel=thread.channel, flow_id="f", version=1, name="F", definition={}
    )
    FlowSession.objects.create(
        tenant=tenant,
        thread=thread,
        flow=flow,
        status=SessionStatus.WAITING,
        variables={"email": "joana@example.com"},
    )
    MessageFactory(thread=thread, provider_message_id=WAMID)

    # when
    params = connection.get_connection_params()
    dump = subprocess.run(
        [
            "pg_dump",
            "--data-only",
            "-h",
            params.get("host", "127.0.0.1"),
            "-p",
            str(params.get("port", 5432)),
            "-U",
            params.get("user", "postgres"),
            params["dbname"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout

    # then
    assert "conversations_message" in dump
    for value in PII:
        assert value not in dump
