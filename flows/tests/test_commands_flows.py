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
from conversations.models import ChatThread, Contact, Message, MessageAttachment
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


@pytest.fixture
def sandbox(settings):
    settings.SANDBOX_PROVIDER_ENABLED = True


def _seed(django_capture_on_commit_callbacks) -> str:
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_is_idempotent(sandbox, django_capture_on_commit_callbacks):
    # when
    _seed(django_capture_on_commit_callbacks)

    # then
    tenant = Tenant.objects.get(slug="demo-fitness")
    config = TenantProjectConfig.objects.get(tenant=tenant)
    assert "fitness" in config.business_description.lower()
    channel = ChannelInstance.objects.get(identifier="whatsapp:+15550000001")
    # the contract's number (Twilio's format), on the sandbox: replies work with no credentials
    assert channel.tenant == tenant and channel.provider == "sandbox"
    flow = Flow.objects.get(channel=channel)
    assert (flow.flow_id, flow.version, flow.is_active) == ("fitness-welcome", 1, True)
    models = (
        Tenant,
        TenantProjectConfig,
        ChannelInstance,
        Flow,
        Contact,
        ChatThread,
        Message,
        MessageAttachment,
    )
    snapshot = {
        model: sorted(
            (str(row["id"]), str(row["updated_at"])) for row in model.all_objects.values()
        )
        for model in models
    }

    # when run again
    second = _seed(django_capture_on_commit_callbacks)

    # then nothing changed
    for model, rows in snapshot.items():
        assert (
            sorted((str(r["id"]), str(r["updated_at"])) for r in model.all_objects.values()) == rows
        )
    assert "up to date" in second and "Demo conversations exist." in second


@pytest.mark.django_db
def test_seed_demo_leaves_a_conversation_waiting_for_a_person(
    sandbox, django_capture_on_commit_callbacks
):
    _seed(django_capture_on_commit_callbacks)

    waiting = ChatThread.objects.get(needs_human=True)
    assert waiting.contact.name == "Maria Silva"
    kinds = list(
        waiting.messages.filter(direction="inbound")
        .order_by("created_at")
        .values_list("kind", flat=True)
    )
    assert kinds[-2:] == ["image", "location"]
    attachment = MessageAttachment.objects.get(message__thread=waiting)
    assert attachment.download_status == "stored" and attachment.content_type == "image/png"
    with attachment.file.open("rb") as stored:
        assert stored.read(8) == b"\x89PNG\r\n\x1a\n"
    location = waiting.messages.get(kind="location")
    assert location.metadata  # coordinates kept for the inbox
    # the flow's replies went out through the sandbox (no credentials needed)
    replies = Message.objects.filter(thread=waiting, direction="outbound")
    assert replies.exists() and set(replies.values_list("status", flat=True)) == {"sent"}

    other = ChatThread.objects.exclude(pk=waiting.pk).get()
    assert other.needs_human is False and other.contact.name == "Alex Chen"


@pytest.mark.django_db
def test_seed_demo_turns_an_earlier_demos_twilio_channel_into_a_sandbox_one(
    sandbox, django_capture_on_commit_callbacks
):
    _seed(django_capture_on_commit_callbacks)
    ChannelInstance.objects.update(provider="twilio")

    out = _seed(django_capture_on_commit_callbacks)

    assert ChannelInstance.objects.get().provider == "sandbox"
    assert "moved to the sandbox provider" in out


@pytest.mark.django_db
def test_seed_demo_needs_the_sandbox(settings):
    settings.DEBUG = False
    settings.SANDBOX_PROVIDER_ENABLED = False
    with pytest.raises(CommandError, match="SANDBOX_PROVIDER_ENABLED"):
        call_command("seed_demo", stdout=StringIO())
    assert not Tenant.objects.filter(slug="demo-fitness").exists()


@pytest.mark.django_db
def test_seed_demo_refuses_a_channel_of_another_tenant(sandbox, other_tenant):
    from channels_app.services import channel_create

    channel_create(
        tenant=other_tenant, provider="twilio", phone_number="+15550000001", identifier=""
    )

    with pytest.raises(CommandError, match="another tenant"):
        call_command("seed_demo", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_seed_demo_history_plays_past_days_once(sandbox):
    """Run for real (commits, so tasks run after each message as in `make run`)."""
    from datetime import timedelta

    from django.utils import timezone

    from conversations.demo_history import STALE_AFTER
    from conversations.models import Handoff
    from flows.models import FlowEvent, FlowEventKind, FlowSession

    # when: three days of history, asked for twice
    out = StringIO()
    call_command("seed_demo", "--history", "3", stdout=out)
    counts = (Message.objects.count(), FlowEvent.objects.count())
    call_command("seed_demo", "--history", "3", stdout=out)

    # then: past conversations, played through the flow, moved back to their days, once
    assert "past conversations over 3 days" in out.getvalue()
    assert "Demo history exists." in out.getvalue()
    assert (Message.objects.count(), FlowEvent.objects.count()) == counts
    now = timezone.now()
    past = ChatThread.objects.filter(created_at__lt=now - timedelta(hours=12))
    assert past.count() >= 9  # at least 3 contacts a day
    for thread in past:
        # every row of a past conversation moved back with it
        assert not thread.messages.filter(created_at__gt=now - timedelta(hours=1)).exists()
        sessions = FlowSession.objects.filter(thread=thread)
        assert not sessions.filter(created_at__gt=now - timedelta(hours=1)).exists()
        events = FlowEvent.objects.filter(session_id__in=sessions.values("pk"))
        # A silence expires a day later, which for yesterday's visitors can be minutes ago;
        # everything else happened on the visit's day.
        assert (
            not events.exclude(kind=FlowEventKind.EXPIRED)
            .filter(created_at__gt=now - timedelta(hours=1))
            .exists()
        )
        for event in events.filter(kind=FlowEventKind.EXPIRED):
            assert event.created_at >= thread.created_at + STALE_AFTER - timedelta(hours=1)
            assert event.created_at <= now
    answered = Handoff.objects.filter(first_reply_at__isnull=False)
    assert all(h.first_reply_at > h.started_at for h in answered)


@pytest.mark.django_db
def test_seed_demo_history_refuses_a_bad_number_of_days(sandbox):
    with pytest.raises(CommandError, match="from 0 to 90"):
        call_command("seed_demo", "--history", "91")
