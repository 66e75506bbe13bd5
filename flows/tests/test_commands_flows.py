"""validate_flow and seed_demo."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from channels_app.models import ChannelInstance
from flows.models import Flow
from flows.tests.support import SHARED_EXAMPLES, flow_doc
from tenants.models import Tenant, TenantProjectConfig


def _validate(*files):
    out = StringIO()
    code = 0
    try:
        call_command("validate_flow", *[str(f) for f in files], stdout=out)
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def test_valid_files_print_ok_and_exit_zero():
    files = sorted(SHARED_EXAMPLES.glob("*.json"))
    assert len(files) == 2

    code, output = _validate(*files)

    assert code == 0
    assert output.splitlines() == [f"OK {f}" for f in files]


def test_invalid_file_lists_every_error_with_its_path_and_exits_one(tmp_path):
    doc = flow_doc("bad")
    doc["nodes"][0]["choices"][1]["next"] = "pricing"
    doc["nodes"][2]["txt"] = "typo"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(flow_doc("good")))

    code, output = _validate(bad, good)

    assert code == 1
    assert f"INVALID {bad}" in output
    assert 'nodes[0].choices[1].next: unknown node "pricing"' in output
    assert "nodes[2].txt" in output
    assert f"OK {good}" in output


def test_unreadable_file_and_bad_json_are_command_errors(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("validate_flow", str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,')
    with pytest.raises(CommandError, match="not valid JSON: .* line 1"):
        call_command("validate_flow", str(broken))


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    # when
    first = StringIO()
    call_command("seed_demo", stdout=first)

    # then
    tenant = Tenant.objects.get(slug="demo-fitness")
    config = TenantProjectConfig.objects.get(tenant=tenant)
    assert "fitness" in config.business_description.lower()
    channel = ChannelInstance.objects.get(identifier="whatsapp:+15550000001")
    assert channel.tenant == tenant and channel.provider == "twilio"
    flow = Flow.objects.get(channel=channel)
    assert (flow.flow_id, flow.version, flow.is_active) == ("fitness-welcome", 1, True)
    snapshot = {
        model: sorted(
            (str(row["id"]), str(row["updated_at"])) for row in model.all_objects.values()
        )
        for model in (Tenant, TenantProjectConfig, ChannelInstance, Flow)
    }

    # when run again
    second = StringIO()
    call_command("seed_demo", stdout=second)

    # then nothing changed
    for model, rows in snapshot.items():
        assert (
            sorted((str(r["id"]), str(r["updated_at"])) for r in model.all_objects.values()) == rows
        )
    assert "up to date" in second.getvalue()


@pytest.mark.django_db
def test_seed_demo_refuses_a_channel_of_another_tenant(other_tenant):
    from channels_app.services import channel_create

    channel_create(
        tenant=other_tenant, provider="twilio", phone_number="+15550000001", identifier=""
    )

    with pytest.raises(CommandError, match="another tenant"):
        call_command("seed_demo", stdout=StringIO())
