"""The inbox offers the channel's approved templates when the 24-hour window is closed."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations.models import Message
from conversations.tests.inbox_support import logged_in
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def quiet(tenant):
    """A Cloud API thread whose contact wrote three days ago, and the channel's templates."""
    channel = factories.CloudChannelFactory(tenant=tenant)
    thread = factories.ThreadFactory(
        channel=channel,
        contact=factories.ContactFactory(tenant=tenant, name="Maria", phone="+5511988887777"),
        last_inbound_at=timezone.now() - timedelta(days=3),
    )
    factories.ChannelTemplateFactory(channel=channel, name="follow_up")
    factories.ChannelTemplateFactory(channel=channel, name="paused_promo", status="paused")
    return thread


def page_of(thread):
    return reverse("admin:inbox-thread", args=[thread.pk])


def act_url(thread):
    return reverse("admin:inbox-thread-act", args=[thread.pk])


def test_a_closed_window_offers_the_approved_templates_only(tenant, member, quiet):
    html = logged_in(member(tenant, "agent")).get(page_of(quiet)).content.decode()
    assert "The 24-hour window is closed." in html
    assert "follow_up" in html and "Send template" in html
    assert "paused_promo" not in html
    assert "{{1}}" in html  # the placeholder's input is labelled


def test_an_open_window_or_a_viewer_is_offered_none(tenant, member, quiet):
    assert (
        "Send template"
        not in logged_in(member(tenant, "viewer")).get(page_of(quiet)).content.decode()
    )
    quiet.last_inbound_at = timezone.now()
    quiet.save()
    assert (
        "Send template"
        not in logged_in(member(tenant, "agent")).get(page_of(quiet)).content.decode()
    )


def test_sending_an_offered_template_queues_it_rendered(tenant, member, quiet):
    template = quiet.channel.templates.get(name="follow_up")
    client = logged_in(member(tenant, "agent"))

    response = client.post(
        act_url(quiet), {"action": "template", "template": str(template.pk), "value": ["Maria"]}
    )

    assert response.status_code == 302
    message = Message.objects.get(thread=quiet)
    assert (message.kind, message.sender) == ("template", "agent")
    assert message.text == "Hi Maria, we have news about your request."
    page = client.get(page_of(quiet)).content.decode()
    assert "template follow_up" in page and "Template follow_up sent." in page


@pytest.mark.parametrize(
    ("values", "error"),
    [([], "Fill in every value"), (["  "], "May not be blank")],
)
def test_a_template_with_missing_values_is_refused(tenant, member, quiet, values, error):
    template = quiet.channel.templates.get(name="follow_up")
    client = logged_in(member(tenant, "agent"))
    client.post(
        act_url(quiet), {"action": "template", "template": str(template.pk), "value": values}
    )
    assert error in client.get(page_of(quiet)).content.decode()
    assert not Message.objects.filter(thread=quiet).exists()


def test_another_channels_template_is_refused(tenant, other_tenant, member, quiet):
    theirs = factories.ChannelTemplateFactory(
        channel=factories.CloudChannelFactory(tenant=other_tenant)
    )
    client = logged_in(member(tenant, "agent"))
    client.post(act_url(quiet), {"action": "template", "template": str(theirs.pk), "value": ["x"]})
    assert "not one of this channel" in client.get(page_of(quiet)).content.decode()
    assert not Message.objects.exists()


def test_a_failed_template_is_never_retried_as_free_text(tenant, member, quiet):
    # given: a template message that failed with a code that allows retrying a text
    failed = factories.MessageFactory(
        thread=quiet,
        direction="outbound",
        kind="template",
        sender="agent",
        status="failed",
        error_code="network",
        text="Hi Maria, we have news about your request.",
    )
    client = logged_in(member(tenant, "agent"))

    # then: no Retry is offered, and a forged retry is refused
    page = client.get(page_of(quiet)).content.decode()
    assert f'name="message" value="{failed.pk}"' not in page
    client.post(act_url(quiet), {"action": "retry", "message": str(failed.pk)})
    assert "cannot be sent again" in client.get(page_of(quiet)).content.decode()
    assert Message.objects.filter(thread=quiet).count() == 1


def test_a_flows_unavailable_template_is_explained():
    from conversations.failures import explain

    failure = explain("template_unavailable")
    assert "Sync the channel's templates" in failure.todo and not failure.retry


def test_an_opted_out_contact_is_offered_no_template_and_a_forged_send_is_refused(
    tenant, member, quiet
):
    quiet.contact.opted_out_at = timezone.now() - timedelta(days=1)
    quiet.contact.save()
    template = quiet.channel.templates.get(name="follow_up")
    client = logged_in(member(tenant, "agent"))

    assert "Send template" not in client.get(page_of(quiet)).content.decode()
    client.post(
        act_url(quiet), {"action": "template", "template": str(template.pk), "value": ["Maria"]}
    )
    assert "Not sent: The contact opted out" in client.get(page_of(quiet)).content.decode()
    assert not Message.objects.filter(thread=quiet).exists()


def test_a_twilio_channel_on_the_platform_credentials_is_offered_no_template(tenant, member):
    channel = factories.TwilioChannelFactory(tenant=tenant, secrets={})
    thread = factories.ThreadFactory(
        channel=channel, last_inbound_at=timezone.now() - timedelta(days=3)
    )
    factories.ChannelTemplateFactory(channel=channel, name="follow_up", content_sid="HX" + "1" * 32)

    html = logged_in(member(tenant, "agent")).get(page_of(thread)).content.decode()

    assert "The 24-hour window is closed." in html and "Send template" not in html
