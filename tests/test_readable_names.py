"""What the admin calls things: a name a person recognises in lists, breadcrumbs and page
titles, never a bare id; and a name that costs no query of its own."""

import pytest
from django.test import Client
from django.urls import reverse

from channels_app.models import ChannelInstance
from flows.models import Flow, FlowSession
from tenants.api_keys import api_key_create, api_key_revoke
from tenants.models import TenantAPIKey, TenantMembership, TenantProjectConfig
from tests import factories


@pytest.fixture
def acme(db):
    return factories.TenantFactory(name="Acme")


@pytest.fixture
def channel(acme):
    return factories.TwilioChannelFactory(tenant=acme, phone_number="+15550000001")


@pytest.fixture
def flow(acme, channel):
    return Flow.objects.create(
        tenant=acme, channel=channel, flow_id="welcome", version=3, name="Welcome", definition={}
    )


@pytest.fixture
def session(acme, channel, flow):
    thread = factories.ThreadFactory(channel=channel)
    return FlowSession.objects.create(
        tenant=acme, thread=thread, flow=flow, status="waiting", variables={}
    )


def test_a_channel_names_its_tenant_number_and_provider(channel, django_assert_num_queries):
    assert str(channel) == "Acme · WhatsApp +1555…0001 (Twilio)"
    cloud = factories.CloudChannelFactory(tenant=channel.tenant, phone_number="+5511900000002")
    assert str(cloud) == "Acme · WhatsApp +5511…0002 (Cloud API)"
    # loaded without its tenant: no query, the tenant left out
    bare = ChannelInstance.objects.get(pk=channel.pk)
    with django_assert_num_queries(0):
        assert str(bare) == "WhatsApp +1555…0001 (Twilio)"


def test_a_flow_is_its_name_and_version(flow):
    assert str(flow) == "Welcome v3"


def test_a_session_names_its_flow_status_and_start(session, django_assert_num_queries):
    loaded = FlowSession.objects.select_related("flow").get(pk=session.pk)
    with django_assert_num_queries(0):
        text = str(loaded)
    assert text.startswith("Welcome v3 · waiting · ")
    bare = FlowSession.objects.get(pk=session.pk)
    with django_assert_num_queries(0):
        assert str(bare).startswith("Flow session · waiting · ")
    assert str(session.pk) not in text


def test_keys_members_and_configs(acme, member, django_assert_num_queries):
    api_key, _ = api_key_create(tenant=acme, name="CRM sync")
    assert str(api_key) == f"Acme · CRM sync ({api_key.prefix}…)"
    api_key_revoke(api_key=api_key)
    assert str(api_key).endswith("· revoked")
    bare = TenantAPIKey.objects.get(pk=api_key.pk)
    with django_assert_num_queries(0):
        assert str(bare) == f"CRM sync ({api_key.prefix}…) · revoked"

    member(acme, "agent", username="alice")
    membership = TenantMembership.objects.select_related("user", "tenant").get(
        user__username="alice"
    )
    with django_assert_num_queries(0):
        assert str(membership) == "alice, agent at Acme"

    config = TenantProjectConfig.objects.select_related("tenant").get(tenant=acme)
    assert str(config) == "AI config of Acme"
    bare_config = TenantProjectConfig.objects.get(tenant=acme)
    with django_assert_num_queries(0):
        assert str(bare_config) == "AI config"


@pytest.mark.django_db
def test_admin_pages_are_titled_by_name_not_id(acme, channel, flow, session, member):
    # given
    api_key, _ = api_key_create(tenant=acme, name="CRM sync")
    owner = member(acme, "owner", username="olivia")
    membership = TenantMembership.objects.get(user=owner)
    client = Client()
    client.force_login(owner)
    pages = {
        "channels_app_channelinstance": (channel, "Acme · WhatsApp +1555…0001 (Twilio)"),
        "flows_flow": (flow, "Welcome v3"),
        "flows_flowsession": (session, "Welcome v3 · waiting"),
        "tenants_tenantapikey": (api_key, "Acme · CRM sync"),
        "tenants_tenantmembership": (membership, "olivia, owner at Acme"),
    }
    for name, (obj, title) in pages.items():
        # when
        page = client.get(reverse(f"admin:{name}_change", args=[obj.pk]))
        html = page.content.decode()
        # then: the title and the breadcrumbs say the name
        assert page.status_code == 200, name
        head = html[html.index("<title>") : html.index("</title>")]
        assert title in head, (name, head)
        crumbs = html[html.index('class="breadcrumbs"') :]
        crumbs = crumbs[: crumbs.index("</div>")]
        assert title in crumbs and str(obj.pk) not in crumbs, (name, crumbs)


@pytest.mark.django_db
def test_the_session_list_reads_by_flow_and_costs_no_query_per_row(
    acme, channel, flow, session, admin_client, django_assert_max_num_queries
):
    url = reverse("admin:flows_flowsession_changelist")
    page = admin_client.get(url)
    assert "Welcome v3 · waiting" in page.content.decode()
    assert f">{session.pk}<" not in page.content.decode()
    with django_assert_max_num_queries(20) as few:
        admin_client.get(url)
    for _ in range(10):
        thread = factories.ThreadFactory(channel=channel)
        FlowSession.objects.create(
            tenant=acme, thread=thread, flow=flow, status="completed", variables={}
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(url)
