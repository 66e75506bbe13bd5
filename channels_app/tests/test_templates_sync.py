"""Syncing a channel's message templates from the provider: replayed provider answers."""

from datetime import timedelta
from io import StringIO
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from django.utils import timezone

from channels_app.models import ChannelTemplate
from channels_app.templates import TemplateSyncError, channel_templates_sync, templates_sync_all
from tests import factories

from .webhook_support import load

pytestmark = pytest.mark.django_db

WABA = "102290129340398"
TEMPLATES_URL = f"https://graph.facebook.test/v22.0/{WABA}/message_templates"
CONTENT_URL = "https://content.twilio.test/v1/ContentAndApprovals"


@pytest.fixture
def cloud_channel(tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    channel.settings = {**channel.settings, "business_account_id": WABA}
    channel.save()
    return channel


@responses.activate
def test_cloud_api_sync_reads_every_page_and_stores_each_template(cloud_channel):
    # given
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page1.json"))
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page2.json"))

    # when
    report = channel_templates_sync(channel=cloud_channel)

    # then
    assert report.as_dict() == {"created": 3, "updated": 0, "gone": 0}
    first, second = responses.calls[0].request, responses.calls[1].request
    assert first.headers["Authorization"] == "Bearer EAAG-test-token"
    query = parse_qs(urlparse(first.url).query)
    assert query["fields"] == [
        "id,name,language,status,category,components,parameter_format,rejected_reason"
    ]
    assert query["limit"] == ["100"]
    assert parse_qs(urlparse(second.url).query)["after"] == ["MQZDZD"]
    order = ChannelTemplate.objects.get(channel=cloud_channel, name="order_update")
    assert (order.language, order.category, order.status) == ("en_US", "UTILITY", "approved")
    assert order.provider_template_id == "1032423574593948"
    assert order.parameters == [
        {"component": "header", "name": "1"},
        {"component": "body", "name": "1"},
        {"component": "body", "name": "2"},
    ]
    assert order.body.startswith("Order {{1}}\n\nHi {{1}}, your order")
    assert order.components[0]["type"] == "HEADER" and order.sendable
    sale = ChannelTemplate.objects.get(channel=cloud_channel, name="winter_sale")
    assert (sale.status, sale.named, sale.rejection_reason) == ("rejected", True, "PROMOTIONAL")
    assert sale.parameters == [{"component": "body", "name": "first_name"}]
    assert not sale.sendable
    assert ChannelTemplate.objects.get(name="hello_world").parameters == []


@responses.activate
def test_a_second_sync_updates_known_ones_and_marks_missing_ones_gone(cloud_channel):
    # given: synced once
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page1.json"))
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page2.json"))
    channel_templates_sync(channel=cloud_channel)
    # the provider now lists order_update only, paused
    page = load("cloud_api/message_templates_page1.json")
    page["data"] = page["data"][:1]
    page["data"][0]["status"] = "PAUSED"
    del page["paging"]["next"]
    responses.replace(responses.GET, TEMPLATES_URL, json=page)

    # when
    report = channel_templates_sync(channel=cloud_channel)

    # then
    assert report.as_dict() == {"created": 0, "updated": 1, "gone": 2}
    order = ChannelTemplate.objects.get(name="order_update")
    assert order.status == "paused" and order.gone_at is None and not order.sendable
    gone = ChannelTemplate.objects.get(name="hello_world")
    assert gone.gone_at is not None and not gone.sendable
    assert ChannelTemplate.objects.count() == 3


@responses.activate
def test_a_refused_sync_raises_the_providers_reason_and_changes_nothing(cloud_channel):
    # given
    factories.ChannelTemplateFactory(channel=cloud_channel, name="kept")
    responses.get(TEMPLATES_URL, json=load("cloud_api/error_100_templates.json"), status=400)

    # when
    with pytest.raises(TemplateSyncError) as caught:
        channel_templates_sync(channel=cloud_channel)

    # then
    assert caught.value.code == "100" and caught.value.status == 400
    assert "nonexisting field (message_templates)" in str(caught.value)
    assert list(ChannelTemplate.objects.values_list("name", "gone_at")) == [("kept", None)]


def test_a_cloud_channel_without_business_account_id_cannot_sync(tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    with pytest.raises(TemplateSyncError) as caught:
        channel_templates_sync(channel=channel)
    assert caught.value.code == "no_business_account_id"


@pytest.fixture
def synced_cloud_channel(cloud_channel):
    """A Cloud API channel whose three templates were synced once."""
    with responses.RequestsMock() as mock:
        mock.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page1.json"))
        mock.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page2.json"))
        channel_templates_sync(channel=cloud_channel)
    return cloud_channel


def _incomplete_changes_nothing(channel):
    before = list(ChannelTemplate.objects.values_list("name", "gone_at", "synced_at"))
    with pytest.raises(TemplateSyncError) as caught:
        channel_templates_sync(channel=channel)
    assert caught.value.code == "incomplete"
    assert list(ChannelTemplate.objects.values_list("name", "gone_at", "synced_at")) == before


@responses.activate
def test_a_paging_link_to_another_host_is_not_followed_and_changes_nothing(
    synced_cloud_channel,
):
    page = load("cloud_api/message_templates_page1.json")
    page["paging"]["next"] = "https://attacker.test/next?after=x"
    responses.get(TEMPLATES_URL, json=page)

    _incomplete_changes_nothing(synced_cloud_channel)

    assert len(responses.calls) == 1


@responses.activate
def test_a_listing_cut_short_at_the_page_cap_changes_nothing(synced_cloud_channel, monkeypatch):
    from channels_app.providers import cloud_api

    monkeypatch.setattr(cloud_api, "MAX_TEMPLATE_PAGES", 1)
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page1.json"))

    _incomplete_changes_nothing(synced_cloud_channel)


@pytest.mark.parametrize("page", [{"paging": {}}, {"data": {"name": "x"}}])
@responses.activate
def test_a_page_without_its_data_list_changes_nothing(synced_cloud_channel, page):
    responses.get(TEMPLATES_URL, json=page)

    _incomplete_changes_nothing(synced_cloud_channel)
    assert ChannelTemplate.objects.filter(gone_at__isnull=True).count() == 3


@responses.activate
def test_twilio_sync_reads_the_content_api_with_the_channels_credentials(tenant):
    # given
    channel = factories.TwilioChannelFactory(tenant=tenant)
    responses.get(CONTENT_URL, json=load("twilio/content_and_approvals.json"))

    # when
    report = channel_templates_sync(channel=channel)

    # then
    assert report.created == 2
    request = responses.calls[0].request
    assert parse_qs(urlparse(request.url).query) == {"PageSize": ["500"]}
    assert request.headers["Authorization"].startswith("Basic ")
    reminder = ChannelTemplate.objects.get(content_sid="HX2d2ddbbe8bca9ba2a3e2bcd91ca3c16b")
    assert (reminder.name, reminder.language, reminder.category) == (
        "appointment_reminder",
        "en",
        "UTILITY",
    )
    assert reminder.status == "approved" and reminder.sendable
    assert reminder.parameters == [
        {"name": "1", "default": "name"},
        {"name": "2", "default": "time"},
    ]
    assert reminder.body == "Hi {{1}}, your appointment is at {{2}}."
    sale = ChannelTemplate.objects.get(content_sid="HX7e3c5d1b9a0f4e2d8c6b4a2f0e1d3c5b")
    assert sale.status == "rejected"
    assert sale.rejection_reason == "Promotional content in a utility template"


@pytest.mark.parametrize("problem", ["no_contents", "other_host", "page_cap"])
@responses.activate
def test_an_incomplete_twilio_listing_changes_nothing(tenant, monkeypatch, problem):
    from channels_app.providers import twilio

    channel = factories.TwilioChannelFactory(tenant=tenant)
    responses.get(CONTENT_URL, json=load("twilio/content_and_approvals.json"))
    channel_templates_sync(channel=channel)
    page = load("twilio/content_and_approvals.json")
    if problem == "no_contents":
        del page["contents"]
    elif problem == "other_host":
        page["meta"]["next_page_url"] = "https://attacker.test/v1/ContentAndApprovals?Page=1"
    else:
        monkeypatch.setattr(twilio, "MAX_CONTENT_PAGES", 1)
        page["meta"]["next_page_url"] = CONTENT_URL + "?PageSize=500&Page=1"
    responses.replace(responses.GET, CONTENT_URL, json=page)

    _incomplete_changes_nothing(channel)
    assert ChannelTemplate.objects.filter(gone_at__isnull=True).count() == 2


@responses.activate
def test_twilio_refusal_is_a_sync_error_with_twilios_code(tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant)
    responses.get(CONTENT_URL, json=load("twilio/content_error_401.json"), status=401)

    with pytest.raises(TemplateSyncError) as caught:
        channel_templates_sync(channel=channel)

    assert (caught.value.code, str(caught.value)) == ("20003", "Authenticate")
    assert not ChannelTemplate.objects.exists()


@responses.activate
def test_the_periodic_sync_goes_on_past_a_failing_channel(tenant, other_tenant, cloud_channel):
    # given: a Twilio channel whose sync fails, a Cloud one that works, one without an account
    factories.TwilioChannelFactory(tenant=other_tenant)
    factories.CloudChannelFactory(tenant=tenant)
    responses.get(CONTENT_URL, json=load("twilio/content_error_401.json"), status=401)
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page2.json"))

    # when
    counts = templates_sync_all()

    # then
    assert counts == {"synced": 1, "failed": 1, "skipped": 1}
    assert ChannelTemplate.objects.filter(tenant=tenant).count() == 1
    assert ChannelTemplate.objects.get().synced_at > timezone.now() - timedelta(minutes=1)


@responses.activate
def test_the_command_syncs_one_channel_and_refuses_an_unknown_one(cloud_channel):
    from django.core.management import CommandError, call_command

    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page2.json"))
    out = StringIO()
    call_command("sync_templates", "--channel", str(cloud_channel.pk), stdout=out)
    assert out.getvalue().strip() == "1 new, 0 updated, 0 no longer listed."
    with pytest.raises(CommandError, match="No such channel"):
        call_command("sync_templates", "--channel", "not-an-id")
    responses.replace(
        responses.GET, TEMPLATES_URL, json=load("cloud_api/error_100_templates.json"), status=400
    )
    with pytest.raises(CommandError, match=r"refused \(100\)"):
        call_command("sync_templates", "--channel", str(cloud_channel.pk))


def test_the_sync_is_a_periodic_job_for_beat_and_the_embedded_scheduler(settings):
    from channels_app.tasks import sync_templates
    from core.scheduler import jobs_from_beat

    entry = settings.CELERY_BEAT_SCHEDULE["sync-templates"]
    assert entry == {"task": "channels_app.tasks.sync_templates", "schedule": 6 * 3600.0}
    jobs = {
        job.name: job
        for job in jobs_from_beat(
            settings.CELERY_BEAT_SCHEDULE,
            overrides=settings.EMBEDDED_SCHEDULE_SECONDS,
            delayed=settings.EMBEDDED_SCHEDULE_DELAYED,
        )
    }
    assert jobs["sync-templates"].run is sync_templates
    assert jobs["sync-templates"].every == 6 * 3600.0
    assert jobs["sync-templates"].delayed and not jobs["process-flow-timeouts"].delayed


def test_the_embedded_scheduler_first_syncs_templates_a_full_interval_after_start(settings):
    from core.scheduler import Scheduler, embedded_scheduler

    now = [1000.0]
    built = embedded_scheduler()
    scheduler = Scheduler(built.jobs, tick=1.0, clock=lambda: now[0])
    for job in scheduler.jobs:
        job.run = lambda: None

    # one tick after start: the flow timeouts run, the template sync does not
    ran = scheduler.run_due(now=1001.0)
    assert "process-flow-timeouts" in ran and "sync-templates" not in ran
    assert "sync-templates" not in scheduler.run_due(now=1000.0 + 6 * 3600.0 - 1)
    assert "sync-templates" in scheduler.run_due(now=1000.0 + 6 * 3600.0)


def test_positional_placeholders_are_stored_in_number_order_as_meta_fills_them():
    from channels_app.providers import cloud_api
    from channels_app.providers.base import OutboundPayload, TemplateMessage

    raw = {
        "name": "swap",
        "language": "en_US",
        "status": "APPROVED",
        "components": [{"type": "BODY", "text": "Pick up {{2}} at {{1}}; {{10}} left."}],
    }
    parsed = cloud_api.parse_template(raw)
    assert parsed is not None and not parsed.named
    assert [item["name"] for item in parsed.parameters] == ["1", "2", "10"]
    # the send puts the values in that order: Meta's {{1}} gets the first
    template = TemplateMessage(
        name="swap",
        language="en_US",
        parameters=(("body", "1", "the desk"), ("body", "2", "a parcel"), ("body", "10", "3")),
    )
    payload = OutboundPayload(to_phone="+16505551234", text="", template=template)
    sent = cloud_api.build_template_message(payload)["template"]["components"][0]["parameters"]
    assert [item["text"] for item in sent] == ["the desk", "a parcel", "3"]
    named = cloud_api.parse_template(
        {**raw, "components": [{"type": "BODY", "text": "{{b}} and {{a}}"}]}
    )
    assert named is not None and [item["name"] for item in named.parameters] == ["b", "a"]


@responses.activate
def test_the_periodic_sync_counts_a_crashing_channel_and_goes_on(
    tenant, other_tenant, cloud_channel, monkeypatch, caplog
):
    # given: another channel whose sync raises something unexpected
    from channels_app import templates

    broken = factories.CloudChannelFactory(tenant=other_tenant)
    broken.settings = {**broken.settings, "business_account_id": "999"}
    broken.save()
    responses.get(TEMPLATES_URL, json=load("cloud_api/message_templates_page2.json"))
    real_store = templates._store

    def store(channel, fetched):
        if channel.pk == broken.pk:
            raise RuntimeError("secret detail +16505551234")
        return real_store(channel, fetched)

    monkeypatch.setattr(templates, "_store", store)
    responses.get(
        "https://graph.facebook.test/v22.0/999/message_templates",
        json=load("cloud_api/message_templates_page2.json"),
    )

    # when
    counts = templates_sync_all()

    # then
    assert counts == {"synced": 1, "failed": 1, "skipped": 0}
    assert ChannelTemplate.objects.filter(channel=cloud_channel).count() == 1
    crash = [r for r in caplog.records if r.getMessage() == "template sync crashed"]
    assert len(crash) == 1
    assert (crash[0].channel_id, crash[0].error) == (str(broken.pk), "RuntimeError")
    assert "+1650" not in caplog.text and "secret" not in caplog.text


@pytest.mark.postgres  # the tests' in-memory SQLite refuses at once ("table is locked")
@pytest.mark.django_db(transaction=True)
def test_a_sync_waits_for_one_in_progress_on_the_same_channel(cloud_channel):
    # given: another connection syncing the channel (holding its sync lock) that has just
    # inserted hello_world and not committed yet
    import threading
    import time

    from django.db import connection, transaction

    from channels_app import templates
    from channels_app.providers import cloud_api

    fetched = [
        cloud_api.parse_template(t) for t in load("cloud_api/message_templates_page2.json")["data"]
    ]
    holding, release = threading.Event(), threading.Event()

    def first_sync():
        try:
            with transaction.atomic():
                templates._sync_lock(cloud_channel)
                factories.ChannelTemplateFactory(
                    channel=cloud_channel, name="hello_world", language="en_US"
                )
                holding.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=first_sync)
    holder.start()
    assert holding.wait(timeout=10)

    # when: a second sync of the same templates starts meanwhile
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    report = templates._store(cloud_channel, fetched)
    holder.join(timeout=10)

    # then: it waited, and updated the first one's row instead of inserting it again
    assert time.monotonic() - started >= 0.25
    assert report.as_dict() == {"created": 0, "updated": 1, "gone": 0}
    assert ChannelTemplate.objects.filter(channel=cloud_channel).count() == 1


@pytest.mark.parametrize(
    ("components", "reason"),
    [
        ([{"type": "HEADER", "format": "IMAGE"}], "a header of format IMAGE"),
        ([{"type": "HEADER", "format": "DOCUMENT"}], "a header of format DOCUMENT"),
        ([{"type": "HEADER", "format": "LOCATION"}], "a header of format LOCATION"),
        (
            [{"type": "BUTTONS", "buttons": [{"type": "URL", "url": "https://t.example/{{1}}"}]}],
            "a URL button with a variable",
        ),
        ([{"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "X"}]}], "copy-code"),
        ([{"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]}], "otp"),
        ([{"type": "CAROUSEL", "cards": []}], "a carousel"),
    ],
)
@responses.activate
def test_an_approved_template_we_cannot_send_is_stored_unsupported(
    cloud_channel, components, reason
):
    # given: Meta approved it, but a send needs parameters beyond header and body text
    raw = {
        "name": "shipping",
        "language": "en_US",
        "status": "APPROVED",
        "id": "1",
        "components": [{"type": "BODY", "text": "Your parcel {{1}} shipped."}, *components],
    }
    responses.get(TEMPLATES_URL, json={"data": [raw], "paging": {}})

    # when
    channel_templates_sync(channel=cloud_channel)

    # then: stored, with the reason, and never offered
    from channels_app.templates import sendable_templates

    stored = ChannelTemplate.objects.get(name="shipping")
    assert stored.status == "unsupported" and not stored.sendable
    assert reason in stored.rejection_reason
    assert not sendable_templates(channel_id=cloud_channel.pk).exists()


def test_a_static_url_button_or_quick_replies_stay_sendable():
    from channels_app.providers import cloud_api

    raw = {
        "name": "ok",
        "status": "APPROVED",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hi"},
            {"type": "BODY", "text": "Body {{1}}"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "URL", "url": "https://t.example/"},
                    {"type": "QUICK_REPLY", "text": "Thanks"},
                    {"type": "PHONE_NUMBER", "phone_number": "+15550000000"},
                ],
            },
        ],
    }
    parsed = cloud_api.parse_template(raw)
    assert parsed is not None and parsed.status == "approved" and parsed.rejection_reason == ""
