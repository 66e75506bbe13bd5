"""Operations commands: out-of-range arguments and weak passwords are clear errors; a GDPR
export file is readable by its owner only."""

import json
import os
import stat

import pytest
from django.core.management import CommandError, call_command

from tests import factories


@pytest.mark.parametrize(
    ("command", "arguments"),
    [
        ("purge_deleted", ["--older-than-days", "1000000"]),
        ("purge_deleted", ["--older-than-days", "-1"]),
        ("process_pending", ["--grace-seconds", "1000000000000"]),
    ],
)
@pytest.mark.django_db
def test_out_of_range_arguments_are_command_errors(command, arguments):
    with pytest.raises(CommandError):
        call_command(command, *arguments)


@pytest.mark.django_db
def test_bootstrap_admin_refuses_a_weak_password(settings, django_user_model):
    settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD = "admin", "a"
    with pytest.raises(CommandError, match="too weak"):
        call_command("bootstrap_admin")
    assert not django_user_model.objects.exists()


@pytest.mark.django_db
def test_a_gdpr_export_file_is_readable_by_its_owner_only(tmp_path, twilio_channel):
    contact = factories.ContactFactory(tenant=twilio_channel.tenant)
    output = tmp_path / "export.json"
    output.write_text("old")
    output.chmod(0o644)
    call_command(
        "gdpr_export",
        "--tenant",
        str(contact.tenant_id),
        "--contact",
        str(contact.pk),
        "--output",
        str(output),
        stderr=open(os.devnull, "w"),  # noqa: SIM115
    )
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert json.loads(output.read_text())["contact"]["id"] == str(contact.pk)
