"""validate_flow and seed_demo."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
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
    assert output.splitlines() == [*(f"OK {f}" for f in files), "2 of 2 files are valid"]


def test_invalid_file_lists_every_error_with_its_path_and_node_id_and_exits_one(tmp_path):
    doc = flow_doc("bad")
    doc["nodes"][0]["choices"][1]["next"] = "pricing"
    doc["nodes"][2]["txt"] = "typo"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(flow_doc("good")))

    code, output = _validate(bad, good)

    assert code == 1
    assert output.splitlines() == [
        f"INVALID {bad} (3 errors)",
        '  nodes[0](ask).choices[1].next: unknown node "pricing"',
        "  nodes[2](done_no): cannot be reached from start",
        '  nodes[2](done_no).txt: unknown key "txt"',
        f"OK {good}",
        "1 of 2 files is valid",
    ]


def test_every_file_is_checked_and_reported_whatever_is_wrong_with_it(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(flow_doc("good")))
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,\n  "flow_id": }')
    missing = tmp_path / "missing.json"
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps(flow_doc("bad", start="nope")))
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"name": "Clínica"}'.encode("latin-1"))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({**flow_doc("huge"), "padding": "x" * (1024 * 1024)}))
    with_bom = tmp_path / "bom.json"
    with_bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(flow_doc("bom")).encode())
    files = [good, broken, missing, invalid, tmp_path, latin1, deep, huge, with_bom]

    code, output = _validate(*files)

    assert code == 1
    lines = output.splitlines()
    headers = [line for line in lines if not line.startswith("  ")][:-1]
    assert [header.split(" ")[1] for header in headers] == [str(f) for f in files]
    assert f"OK {good}" in lines and f"OK {with_bom}" in lines
    assert (
        f"INVALID {broken}\n  the file is not valid JSON: Expecting value at line 2, column 14\n"
        in output
    )
    assert f"INVALID {missing}\n  the file cannot be read: No such file or directory\n" in output
    assert f'INVALID {invalid} (1 error)\n  start: unknown node "nope"\n' in output
    assert f"INVALID {tmp_path}\n  the file cannot be read: Is a directory\n" in output
    assert f"INVALID {latin1}\n  the file is not UTF-8 text\n" in output
    assert (
        f"INVALID {deep}\n  the file cannot be read as JSON (nesting too deep or a number too "
        "long)\n" in output
    )
    assert f"INVALID {huge}\n  the file is larger than 1 MiB\n" in output
    assert lines[-1] == "2 of 9 files are valid"


def test_exit_code_is_zero_only_when_every_file_is_valid(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(flow_doc("good")))
    bad = tmp_path / "bad.json"
    bad.write_text("[]")

    assert _validate(good) == (0, f"OK {good}\n1 of 1 file is valid\n")
    assert _validate(bad) == (
        1,
        f"INVALID {bad} (1 error)\n  (root): a flow must be a JSON object, not []\n"
        "0 of 1 file is valid\n",
    )
    assert _validate(good, bad)[0] == 1
    assert _validate(bad, good)[0] == 1


def test_the_command_line_exits_with_status_one_on_an_invalid_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(flow_doc("good")))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatai.settings.test"}

    def run(*files):
        return subprocess.run(
            [sys.executable, "manage.py", "validate_flow", *map(str, files)],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    failed = run(bad, good)
    passed = run(good)

    assert failed.returncode == 1, failed.stderr
    assert failed.stdout.splitlines()[-1] == "1 of 2 files is valid"
    assert failed.stderr == ""
    assert passed.returncode == 0, passed.stderr


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
