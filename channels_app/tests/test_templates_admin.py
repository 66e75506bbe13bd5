"""Message templates in the admin: the list, the Sync button, isolation."""

import pytest
import responses
from django.test import Client
from django.urls import reverse

from channels_app.models import ChannelTemplate
from tests import factories

from .webhook_support import load

pytestmark = pytest.mark.django_db

WABA = "102290129340398"
TEMPLATES_URL = f"https://graph.facebook.test/v22.0/{WABA}/message_templates"
CHANGELIST = reverse("admin:channels_app_channeltemplate_changelist")


def client_of(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def channel(tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    channel.settings = {**channel.settings, "business_account_id": WABA}
    channel.save()
    return channel


def sync_url(channel):
    return reverse("admin:channels_app_channelinstance_sync_templates", args=[channel.pk])


def test_the_list_shows_the_tenants_templates_only(tenant, other_tenant, member, channel):
    # given
    factories.ChannelTemplateFactory(channel=channel, name="ours_approved")
    theirs = factories.ChannelTemplateFactory(
        channel=factories.CloudChannelFactory(tenant=other_tenant), name="theirs_secret"
    )
    client = client_of(member(tenant, "agent"))

    # when
    page = client.get(CHANGELIST)

    # then
    assert page.status_code == 200
    assert b"ours_approved" in page.content and b"theirs_secret" not in page.content
    detail = reverse("admin:channels_app_channeltemplate_change", args=[theirs.pk])
    assert client.get(detail).status_code == 404


@responses.activate
def test_the_sync_button_syncs_and_shows_the_outcome(tenant, member, channel):
    # given
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page2.json"))
    client = client_of(member(tenant, "owner"))
    channel_page = client.get(
        reverse("admin:channels_app_channelinstance_change", args=[channel.pk])
    )
    assert sync_url(channel).encode() in channel_page.content
    listed = client.get(f"{CHANGELIST}?channel__id__exact={channel.pk}")
    assert b"Sync templates of" in listed.content

    # when
    response = client.post(sync_url(channel), follow=True)

    # then
    assert response.redirect_chain[-1][0] == f"{CHANGELIST}?channel__id__exact={channel.pk}"
    assert b"Templates synced: 1 new, 0 updated, 0 no longer listed" in response.content
    assert b"hello_world" in response.content
    assert ChannelTemplate.objects.filter(channel=channel).count() == 1


@responses.activate
def test_a_refused_sync_shows_the_providers_reason_and_changes_nothing(tenant, member, channel):
    factories.ChannelTemplateFactory(channel=channel, name="kept")
    responses.get(TEMPLATES_URL, json=load("cloud_api/error_100_templates.json"), status=400)
    client = client_of(member(tenant, "owner"))

    response = client.post(sync_url(channel), follow=True)

    assert b"could not be synced (100)" in response.content
    assert b"nonexisting field (message_templates)" in response.content
    assert ChannelTemplate.objects.get().gone_at is None


def test_agents_cannot_sync_and_another_tenants_channel_is_404(tenant, other_tenant, member):
    ours = factories.CloudChannelFactory(tenant=tenant)
    agent = client_of(member(tenant, "agent"))
    assert agent.post(sync_url(ours)).status_code == 403
    assert b"Sync templates" not in agent.get(f"{CHANGELIST}?channel__id__exact={ours.pk}").content
    owner = client_of(member(tenant, "owner"))
    theirs = factories.CloudChannelFactory(tenant=other_tenant)
    assert owner.post(sync_url(theirs)).status_code == 404
    assert owner.get(sync_url(ours)).status_code == 405
