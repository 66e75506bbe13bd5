"""Export of a contact's data, and the gdpr_export / gdpr_erase commands."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from conversations.models import Contact
from conversations.services.privacy import contact_erase, contact_export
from conversations.tests.test_privacy_erasure import EMAIL, NAME, PHONE, TEXTS, _populate
from tests import factories


@pytest.mark.django_db
def test_export_holds_everything_decrypted(twilio_channel):
    # given
    data = _populate(twilio_channel)

    # when
    exported = contact_export(contact=data["contact"])

    # then it is JSON as it is
    assert json.loads(json.dumps(exported)) == exported
    assert exported["contact"]["phone"] == PHONE
    assert exported["contact"]["name"] == NAME
    assert exported["contact"]["opted_in_at"] == data["contact"].opted_in_at.isoformat()
    assert exported["tenant_id"] == str(twilio_channel.tenant_id)
    [thread] = exported["threads"]
    assert thread["id"] == str(data["thread"].pk)
    assert thread["channel"]["identifier"] == twilio_channel.identifier
    texts = [message["text"] for message in thread["messages"]]
    assert sorted(texts) == sorted(TEXTS)
    inbound = next(m for m in thread["messages"] if m["id"] == str(data["inbound"].pk))
    assert (inbound["direction"], inbound["sender"], inbound["status"]) == (
        "inbound",
        "contact",
        "received",
    )
    assert inbound["attachments"][0]["content_type"] == "image/jpeg"
    assert inbound["attachments"][0]["stored_file"] == data["stored"]
    sessions = {s["id"]: s for s in thread["flow_sessions"]}
    assert sessions[str(data["waiting"].pk)]["variables"]["email"] == EMAIL
    assert sessions[str(data["waiting"].pk)]["flow"]["flow_id"] == "welcome"


@pytest.mark.django_db
def test_export_contains_nothing_of_other_contacts(twilio_channel):
    data = _populate(twilio_channel)
    _populate(twilio_channel, phone="+5511955554444", name="Someone Else", texts=["x1", "x2"])

    exported = json.dumps(contact_export(contact=data["contact"]))

    assert "Someone Else" not in exported and "+5511955554444" not in exported


@pytest.mark.django_db
def test_export_of_an_erased_contact_is_its_tombstone(twilio_channel):
    data = _populate(twilio_channel)
    contact_erase(contact=data["contact"])

    exported = contact_export(contact=data["contact"])

    assert exported["contact"]["phone"] == "" and exported["contact"]["erased_at"]
    assert all(m["text"] == "" for m in exported["threads"][0]["messages"])


@pytest.mark.django_db
def test_gdpr_export_by_phone_to_stdout_and_file(twilio_channel, tmp_path):
    data = _populate(twilio_channel)
    out = StringIO()

    call_command(
        "gdpr_export", "--tenant", str(twilio_channel.tenant_id), "--phone", PHONE, stdout=out
    )

    assert json.loads(out.getvalue())["contact"]["id"] == str(data["contact"].pk)
    target = tmp_path / "export.json"
    call_command(
        "gdpr_export",
        "--tenant",
        str(twilio_channel.tenant_id),
        "--contact",
        str(data["contact"].pk),
        "--output",
        str(target),
        stdout=StringIO(),
        stderr=StringIO(),
    )
    assert json.loads(target.read_text())["contact"]["name"] == NAME


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["--phone", "+5511900000000"],
        ["--phone", "no digits"],
        ["--contact", "not-a-uuid"],
        ["--contact", "00000000-0000-0000-0000-000000000000"],
    ],
)
def test_gdpr_commands_reject_unknown_contacts_without_echoing_the_phone(tenant, args):
    for command in ("gdpr_export", "gdpr_erase"):
        with pytest.raises(CommandError) as excinfo:
            call_command(command, "--tenant", str(tenant.pk), *args, stdout=StringIO())
        assert "+5511900000000" not in str(excinfo.value)
        assert "5511900000000" not in str(excinfo.value)


@pytest.mark.django_db
def test_gdpr_commands_hide_other_tenants_contacts(twilio_channel, other_tenant):
    data = _populate(twilio_channel)
    for args in (["--phone", PHONE], ["--contact", str(data["contact"].pk)]):
        with pytest.raises(CommandError):
            call_command("gdpr_erase", "--tenant", str(other_tenant.pk), *args, stdout=StringIO())
    assert Contact.objects.get(pk=data["contact"].pk).name == NAME


@pytest.mark.django_db
def test_gdpr_commands_reject_bad_tenants(twilio_channel):
    for tenant_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(CommandError):
            call_command("gdpr_export", "--tenant", tenant_id, "--phone", PHONE, stdout=StringIO())


@pytest.mark.django_db
def test_gdpr_erase_dry_run_then_erase_then_again(twilio_channel):
    # given
    data = _populate(twilio_channel)
    tenant_id = str(twilio_channel.tenant_id)

    # when a dry run
    out = StringIO()
    call_command("gdpr_erase", "--tenant", tenant_id, "--phone", PHONE, "--dry-run", stdout=out)

    # then counts are printed and nothing changed
    assert "would change" in out.getvalue() and "messages_redacted: 2" in out.getvalue()
    assert Contact.objects.get(pk=data["contact"].pk).name == NAME

    # when erased for real
    out = StringIO()
    call_command("gdpr_erase", "--tenant", tenant_id, "--phone", PHONE, stdout=out)
    assert "attachments_deleted: 1" in out.getvalue()
    assert Contact.objects.get(pk=data["contact"].pk).erased_at is not None

    # then the phone no longer finds it, the id does, and a second run changes nothing
    with pytest.raises(CommandError):
        call_command("gdpr_erase", "--tenant", tenant_id, "--phone", PHONE, stdout=StringIO())
    out = StringIO()
    call_command(
        "gdpr_erase", "--tenant", tenant_id, "--contact", str(data["contact"].pk), stdout=out
    )
    assert "Nothing to erase" in out.getvalue()


@pytest.mark.django_db
def test_phone_finds_a_soft_deleted_contact_when_no_live_one(twilio_channel):
    data = _populate(twilio_channel)
    Contact.objects.filter(pk=data["contact"].pk).soft_delete()
    out = StringIO()

    call_command(
        "gdpr_export", "--tenant", str(twilio_channel.tenant_id), "--phone", PHONE, stdout=out
    )

    assert json.loads(out.getvalue())["contact"]["deleted_at"]


@pytest.mark.django_db
def test_gdpr_commands_need_exactly_one_subject(tenant):
    with pytest.raises(CommandError):
        call_command("gdpr_export", "--tenant", str(tenant.pk), stdout=StringIO())
    factories.ContactFactory(tenant=tenant)
