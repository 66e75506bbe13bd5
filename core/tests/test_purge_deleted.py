"""purge_deleted: soft-deleted rows past retention are hard-deleted, children first."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from conversations.models import ChatThread, Contact, Message, MessageAttachment
from core.purge import purge_deleted
from flows.models import Flow, FlowSession
from tenants.models import Tenant
from tests import factories


def _age(queryset, days):
    queryset.update(deleted_at=timezone.now() - timedelta(days=days))


def _flow(channel, version=1):
    return Flow.objects.create(
        tenant=channel.tenant,
        channel=channel,
        flow_id="welcome",
        version=version,
        name="Welcome",
        definition={"flow_id": "welcome"},
    )


@pytest.mark.django_db
def test_purges_old_soft_deleted_rows_with_their_children_and_files(
    twilio_channel, django_capture_on_commit_callbacks
):
    # given an old soft-deleted thread with messages and a stored attachment, a recently
    # deleted message, and live data
    old_thread = factories.ThreadFactory(channel=twilio_channel)
    old_messages = [factories.MessageFactory(thread=old_thread) for _ in range(3)]
    name = default_storage.save("attachments/purge/a.jpg", ContentFile(b"x"))
    MessageAttachment.objects.create(message=old_messages[0], media_type="image", file=name)
    _age(ChatThread.objects.filter(pk=old_thread.pk), days=40)
    live_thread = factories.ThreadFactory(channel=twilio_channel)
    recent = factories.MessageFactory(thread=live_thread)
    _age(Message.objects.filter(pk=recent.pk), days=5)
    kept = factories.MessageFactory(thread=live_thread)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        counts = purge_deleted(older_than_days=30)

    # then
    assert not ChatThread.all_objects.filter(pk=old_thread.pk).exists()
    assert not Message.all_objects.filter(thread_id=old_thread.pk).exists()
    assert counts["conversations.ChatThread"] == 1
    assert counts["conversations.Message"] == 3
    assert counts["conversations.MessageAttachment"] == 1
    assert counts["files"] == 1
    assert not default_storage.exists(name)
    assert Message.all_objects.filter(pk=recent.pk).exists()
    assert Message.objects.filter(pk=kept.pk).exists()
    assert Contact.objects.filter(pk=old_thread.contact_id).exists()


@pytest.mark.django_db
def test_flow_versions_referenced_by_sessions_are_kept(twilio_channel):
    # given two soft-deleted flow versions, one still referenced by a session
    used, unused = _flow(twilio_channel, 1), _flow(twilio_channel, 2)
    thread = factories.ThreadFactory(channel=twilio_channel)
    session = FlowSession.objects.create(
        tenant=twilio_channel.tenant, thread=thread, flow=used, status="completed"
    )
    _age(Flow.objects.filter(pk__in=[used.pk, unused.pk]), days=100)

    # when
    counts = purge_deleted(older_than_days=30)

    # then
    assert Flow.all_objects.filter(pk=used.pk).exists()
    assert not Flow.all_objects.filter(pk=unused.pk).exists()
    assert counts["skipped:flows.Flow"] == 1
    assert FlowSession.objects.filter(pk=session.pk).exists()

    # and once the thread (with its sessions) is purged, the flow version goes too
    _age(ChatThread.objects.filter(pk=thread.pk), days=100)
    counts = purge_deleted(older_than_days=30)
    assert counts["flows.FlowSession"] == 1 and counts["flows.Flow"] == 1
    assert not Flow.all_objects.filter(pk=used.pk).exists()


@pytest.mark.django_db
def test_a_purged_tenant_takes_everything_with_it(twilio_channel, other_tenant):
    # given a soft-deleted tenant with a flow that its own sessions reference
    tenant = twilio_channel.tenant
    flow = _flow(twilio_channel)
    thread = factories.ThreadFactory(channel=twilio_channel)
    factories.MessageFactory(thread=thread)
    FlowSession.objects.create(tenant=tenant, thread=thread, flow=flow, status="waiting")
    _age(Tenant.objects.filter(pk=tenant.pk), days=400)

    # when
    out = StringIO()
    call_command("purge_deleted", "--older-than-days", "365", stdout=out)

    # then
    assert not Tenant.all_objects.filter(pk=tenant.pk).exists()
    assert not Flow.all_objects.filter(pk=flow.pk).exists()
    assert not Message.all_objects.filter(thread_id=thread.pk).exists()
    assert Tenant.objects.filter(pk=other_tenant.pk).exists()
    assert "deleted tenants.Tenant: 1" in out.getvalue()


@pytest.mark.django_db
def test_zero_days_purges_everything_soft_deleted_and_reports_nothing_after(twilio_channel):
    contact = factories.ContactFactory(tenant=twilio_channel.tenant)
    Contact.objects.filter(pk=contact.pk).soft_delete()

    out = StringIO()
    call_command("purge_deleted", "--older-than-days", "0", stdout=out)
    assert not Contact.all_objects.filter(pk=contact.pk).exists()

    out = StringIO()
    call_command("purge_deleted", "--older-than-days", "0", stdout=out)
    assert "Nothing soft-deleted" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["-1", "abc", "1.5", ""])
def test_bad_retention_is_a_command_error(twilio_channel, value):
    contact = factories.ContactFactory(tenant=twilio_channel.tenant)
    Contact.objects.filter(pk=contact.pk).soft_delete()

    with pytest.raises(CommandError, match="older-than-days"):
        call_command("purge_deleted", "--older-than-days", value, stdout=StringIO())

    assert Contact.all_objects.filter(pk=contact.pk).exists()


def test_negative_age_is_refused_by_the_service():
    with pytest.raises(ValueError):
        purge_deleted(older_than_days=-1)


@pytest.mark.django_db
def test_a_channel_whose_flow_is_used_elsewhere_is_kept(twilio_channel):
    # given a soft-deleted channel whose flow version a session on another channel uses
    flow = _flow(twilio_channel)
    elsewhere = factories.ThreadFactory(
        channel=factories.TwilioChannelFactory(tenant=twilio_channel.tenant)
    )
    FlowSession.objects.create(
        tenant=twilio_channel.tenant, thread=elsewhere, flow=flow, status="completed"
    )
    own_thread = factories.ThreadFactory(channel=twilio_channel)
    type(twilio_channel).objects.filter(pk=twilio_channel.pk).soft_delete()
    _age(type(twilio_channel).all_objects.filter(pk=twilio_channel.pk), days=90)

    # when
    counts = purge_deleted(older_than_days=30)

    # then nothing of that channel is deleted, and the skip is counted
    assert type(twilio_channel).all_objects.filter(pk=twilio_channel.pk).exists()
    assert Flow.all_objects.filter(pk=flow.pk).exists()
    assert ChatThread.all_objects.filter(pk=own_thread.pk).exists()
    assert counts["skipped:channels_app.ChannelInstance"] == 1
