"""The provider outcome table (#13 item 4): each class of error code, synchronous and in a
`failed` status callback, for Twilio and the Cloud API.

- retry: sent again later with backoff, never made final before MAX_SEND_ATTEMPTS;
- opt_out: the message fails and the contact is opted out, with the provider code as source;
- outside_window: its own final reason, explained as such in the inbox;
- permanent: failed once, never tried again.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from channels_app.providers.outcomes import OUTCOMES, Outcome, outcome_of
from channels_app.tests.webhook_support import (
    post_cloud,
    post_twilio,
    run_on_commit,
)
from conversations.admin import contact_consent
from conversations.failures import explain
from conversations.models import Message
from conversations.services.outbound import (
    MAX_SEND_ATTEMPTS,
    TransientDeliveryError,
    message_deliver,
    replies_store,
    thread_deliver_queued,
)
from conversations.services.pending import pending_process
from conversations.services.privacy import contact_export
from core.crypto import provider_id_pseudonym
from flows.services import Reply
from tests import factories

pytestmark = pytest.mark.django_db

SID = "AC11111111111111111111111111111111"
TWILIO_URL = f"https://api.twilio.test/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
def twilio_thread(tenant):
    channel = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    contact = factories.ContactFactory(tenant=tenant, phone="+5521987654321", name="Maria")
    return factories.ThreadFactory(channel=channel, contact=contact)


@pytest.fixture
def cloud_thread(tenant):
    channel = factories.CloudChannelFactory(tenant=tenant)
    contact = factories.ContactFactory(tenant=tenant, phone="+16505551234", name="Sheena")
    return factories.ThreadFactory(channel=channel, contact=contact)


def cloud_url(thread):
    return (
        f"https://graph.facebook.test/v22.0/{thread.channel.settings['phone_number_id']}/messages"
    )


def twilio_error(code, status=400):
    return {"code": code, "message": f"error {code}", "more_info": "", "status": status}


def twilio_created(sid):
    return {"sid": sid, "status": "queued"}


def graph_error(code, status=400):
    return {"error": {"message": f"({code}) x", "type": "OAuthException", "code": code}}


def graph_sent(wamid):
    return {"messaging_product": "whatsapp", "messages": [{"id": wamid}]}


def store_one(thread, text="hi"):
    with run_on_commit():
        (message,) = replies_store(thread=thread, replies=[Reply(text=text)])
    message.refresh_from_db()
    return message


def twilio_failed_callback(client, thread, sid, code):
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": "failed",
        "ErrorCode": str(code),
        "From": f"whatsapp:{thread.channel.phone_number}",
        "To": f"whatsapp:{thread.contact.phone}",
        "AccountSid": SID,
    }
    return post_twilio(client, params, token="chan-token")


def cloud_failed_callback(client, thread, wamid, code):
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550000002",
                                "phone_number_id": thread.channel.settings["phone_number_id"],
                            },
                            "statuses": [
                                {
                                    "id": wamid,
                                    "status": "failed",
                                    "timestamp": "1750263773",
                                    "recipient_id": "16505551234",
                                    "errors": [{"code": code, "title": "t"}],
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return post_cloud(client, payload)


# --- the table itself -------------------------------------------------------------------


def test_every_listed_code_has_one_outcome_and_an_explanation():
    keys = [(row.provider, row.code) for row in OUTCOMES]
    assert len(keys) == len(set(keys)), "a code is listed twice"
    for row in OUTCOMES:
        assert row.provider in ("twilio", "cloud_api")
        assert re.fullmatch(r"\d{1,6}", row.code)
        # the inbox never shows the generic "could not be delivered (provider code …)"
        assert "provider code" not in explain(row.code).what


@pytest.mark.parametrize(
    ("provider", "code", "outcome"),
    [
        ("twilio", "63018", Outcome.RETRY),
        ("twilio", "20429", Outcome.RETRY),
        ("twilio", "21610", Outcome.OPT_OUT),
        ("twilio", "63016", Outcome.OUTSIDE_WINDOW),
        ("twilio", "63003", Outcome.PERMANENT),
        ("twilio", "63024", Outcome.PERMANENT),
        ("twilio", "21211", Outcome.PERMANENT),
        ("cloud_api", "131047", Outcome.OUTSIDE_WINDOW),
        ("cloud_api", "131026", Outcome.PERMANENT),
        ("cloud_api", "131048", Outcome.RETRY),
        ("cloud_api", "131056", Outcome.RETRY),
        ("cloud_api", "130429", Outcome.RETRY),
        ("cloud_api", "131000", Outcome.RETRY),
        ("cloud_api", "131050", Outcome.PERMANENT),  # marketing only: consent stays
        ("twilio", "63014", Outcome.PERMANENT),  # blocked: writing again unblocks
        ("cloud_api", "131005", Outcome.PERMANENT),
        ("cloud_api", "131008", Outcome.PERMANENT),
        ("cloud_api", "131009", Outcome.PERMANENT),
        ("cloud_api", "132001", Outcome.PERMANENT),
        ("cloud_api", "132999", Outcome.PERMANENT),  # any 132xxx: a template error
        ("cloud_api", "190", Outcome.PERMANENT),
        ("cloud_api", "63018", None),  # codes belong to their provider
        ("twilio", "131047", None),
        ("twilio", "99999", None),
        ("twilio", "", None),
    ],
)
def test_outcome_of(provider, code, outcome):
    assert outcome_of(provider=provider, code=code) is outcome


def test_the_readme_table_lists_every_code():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Provider error codes", 1)[1].split("\n## ", 1)[0]
    for row in OUTCOMES:
        assert f"`{row.code}`" in section, row.code


# --- retry: synchronous ----------------------------------------------------------------


@responses.activate
def test_twilio_rate_limit_answer_is_retried_not_failed(twilio_thread):
    # given: Twilio refuses with 63018 (as a 400), then accepts
    responses.post(TWILIO_URL, json=twilio_error(63018), status=400)
    responses.post(TWILIO_URL, json=twilio_created("SMok"), status=201)

    # when: the first attempt (in-process: left queued for later)
    message = store_one(twilio_thread)

    # then
    assert (message.status, message.error_code) == ("queued", "63018")
    # when: the next attempt (the task's retry, or process_pending)
    assert message_deliver(message_id=message.pk) == "sent"
    message.refresh_from_db()
    assert (message.status, message.provider_message_id, message.error_code) == (
        "sent",
        "SMok",
        "",
    )


@responses.activate
def test_cloud_rate_limit_answer_is_retried_until_the_attempts_run_out(cloud_thread):
    responses.post(cloud_url(cloud_thread), json=graph_error(131056), status=400)
    message = store_one(cloud_thread)
    assert (message.status, message.send_attempts) == ("queued", 1)
    for attempt in range(2, MAX_SEND_ATTEMPTS):
        with pytest.raises(TransientDeliveryError):
            message_deliver(message_id=message.pk)
        message.refresh_from_db()
        assert (message.status, message.send_attempts) == ("queued", attempt)
    assert message_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "131056")
    assert explain(message.error_code).retry


# --- retry: status callback -------------------------------------------------------------


@responses.activate
def test_twilio_rate_limit_callback_requeues_with_backoff_and_sends_again(client, twilio_thread):
    # given: a reply Twilio accepted as SMfirst
    responses.post(TWILIO_URL, json=twilio_created("SMfirst"), status=201)
    responses.post(TWILIO_URL, json=twilio_created("SMsecond"), status=201)
    message = store_one(twilio_thread)
    assert (message.status, message.provider_message_id) == ("sent", "SMfirst")

    # when: Twilio reports it failed with 63018 (rate limit)
    before = timezone.now()
    response = twilio_failed_callback(client, twilio_thread, "SMfirst", 63018)

    # then: queued again, not before the backoff (10 s after the first attempt), old id kept
    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.status, message.error_code, message.provider_message_id) == (
        "queued",
        "63018",
        None,
    )
    retry_after = parse_datetime(message.metadata["retry_after"])
    after = timezone.now()
    assert before + timedelta(seconds=10) <= retry_after <= after + timedelta(seconds=10)
    assert message.metadata["replaced_provider_ids"] == ["SMfirst"]
    assert len(responses.calls) == 1  # the send task found it too early

    # and: a redelivery of the same callback changes nothing
    assert twilio_failed_callback(client, twilio_thread, "SMfirst", 63018).status_code == 200
    message.refresh_from_db()
    assert (message.status, len(message.metadata["replaced_provider_ids"])) == ("queued", 1)

    # when: the backoff has passed and process_pending runs
    later = timezone.now() + timedelta(minutes=2)
    Message.objects.filter(pk=message.pk).update(
        metadata={**message.metadata, "retry_after": (timezone.now()).isoformat()}
    )
    report = pending_process(now=later)

    # then: sent again, with the new id
    assert report.outbound_sent == 1
    message.refresh_from_db()
    assert (message.status, message.provider_message_id, message.send_attempts) == (
        "sent",
        "SMsecond",
        2,
    )
    assert "retry_after" not in message.metadata


@responses.activate
def test_cloud_rate_limit_callback_after_the_last_attempt_is_final(client, cloud_thread):
    wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3AA=="
    responses.post(cloud_url(cloud_thread), json=graph_sent(wamid))
    message = store_one(cloud_thread)
    Message.objects.filter(pk=message.pk).update(send_attempts=MAX_SEND_ATTEMPTS)

    cloud_failed_callback(client, cloud_thread, wamid, 130429)

    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "130429")


@responses.activate
def test_a_message_waiting_for_its_backoff_holds_the_thread_queue(twilio_thread):
    # given: the first reply waits for a backoff, the second is queued behind it
    now = timezone.now()
    first = factories.MessageFactory(
        thread=twilio_thread,
        direction="outbound",
        status="queued",
        sender="flow",
        send_attempts=1,
        error_code="63018",
        created_at=now - timedelta(seconds=2),
        metadata={"retry_after": (now + timedelta(seconds=30)).isoformat()},
    )
    second = factories.MessageFactory(
        thread=twilio_thread, direction="outbound", status="queued", sender="flow"
    )

    # when / then: nothing goes out, in order: the second waits behind the first
    with pytest.raises(TransientDeliveryError):
        thread_deliver_queued(thread_id=twilio_thread.pk)
    assert len(responses.calls) == 0
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.send_attempts, second.status) == ("queued", 1, "queued")


# --- opt-out ----------------------------------------------------------------------------


@responses.activate
def test_twilio_unsubscribed_callback_opts_the_contact_out(client, twilio_thread):
    # given
    responses.post(TWILIO_URL, json=twilio_created("SMstop"), status=201)
    message = store_one(twilio_thread)

    # when
    twilio_failed_callback(client, twilio_thread, "SMstop", 21610)

    # then
    message.refresh_from_db()
    contact = message.thread.contact
    contact.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "21610")
    assert contact.is_opted_out
    assert contact.opt_out_source == "provider:21610"
    first_opt_out = contact.opted_out_at
    # the contact's page and the export say where the opt-out came from
    assert "(provider:21610): no automated message is sent." in " ".join(contact_consent(contact))
    assert contact_export(contact=contact)["contact"]["opt_out_source"] == "provider:21610"

    # and: later automated replies are not sent (no HTTP mock for them)
    with run_on_commit():
        assert replies_store(thread=message.thread, replies=[Reply(text="more")]) == []

    # and: a redelivery keeps the first opt-out
    twilio_failed_callback(client, twilio_thread, "SMstop", 21610)
    contact.refresh_from_db()
    assert contact.opted_out_at == first_opt_out


@responses.activate
def test_cloud_stopped_marketing_fails_the_message_but_keeps_consent(cloud_thread):
    """131050 stops marketing templates only: service replies may still go out, so the
    contact is not opted out (a later "hi" still gets the flow's answer)."""
    responses.post(cloud_url(cloud_thread), json=graph_error(131050), status=400)
    message = store_one(cloud_thread)
    contact = message.thread.contact
    contact.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "131050")
    assert (contact.is_opted_out, contact.opt_out_source) == (False, "")


@responses.activate
def test_twilio_unsubscribed_answer_opts_the_contact_out(twilio_thread):
    responses.post(TWILIO_URL, json=twilio_error(21610), status=400)
    message = store_one(twilio_thread)
    contact = message.thread.contact
    contact.refresh_from_db()
    assert (message.status, contact.opt_out_source) == ("failed", "provider:21610")


def test_a_keyword_opt_out_keeps_its_source(twilio_thread):
    from conversations.services.consent import contact_opt_out

    contact = contact_opt_out(contact=twilio_thread.contact, source="keyword")
    assert contact.opt_out_source == "keyword"
    # already opted out: the first source is kept
    contact_opt_out(contact=contact, source="provider:21610")
    contact.refresh_from_db()
    assert contact.opt_out_source == "keyword"


# --- outside the window -----------------------------------------------------------------


@responses.activate
def test_cloud_outside_window_answer_is_final_and_explained(cloud_thread):
    responses.post(cloud_url(cloud_thread), json=graph_error(131047), status=400)
    message = store_one(cloud_thread)
    assert (message.status, message.error_code) == ("failed", "131047")
    assert message_deliver(message_id=message.pk) == "skipped"
    failure = explain(message.error_code)
    assert "24 hours" in failure.what and not failure.retry
    contact = message.thread.contact
    contact.refresh_from_db()
    assert not contact.is_opted_out


@responses.activate
def test_twilio_outside_window_callback_is_final(client, twilio_thread):
    responses.post(TWILIO_URL, json=twilio_created("SMlate"), status=201)
    message = store_one(twilio_thread)
    twilio_failed_callback(client, twilio_thread, "SMlate", 63016)
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "63016")
    assert "24 hours" in explain("63016").what


# --- permanent --------------------------------------------------------------------------


@responses.activate
@pytest.mark.parametrize("code", [131026, 131009, 132001, 190])
def test_cloud_permanent_answers_fail_once(cloud_thread, code):
    responses.post(cloud_url(cloud_thread), json=graph_error(code), status=400)
    message = store_one(cloud_thread)
    assert (message.status, message.error_code, message.send_attempts) == (
        "failed",
        str(code),
        1,
    )
    assert len(responses.calls) == 1


@responses.activate
def test_cloud_permanent_callback_fails_and_keeps_the_id(client, cloud_thread):
    wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJBQkNERUYwMTIzNDU2Nzg5AA=="
    responses.post(cloud_url(cloud_thread), json=graph_sent(wamid))
    message = store_one(cloud_thread)
    cloud_failed_callback(client, cloud_thread, wamid, 131026)
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "131026")
    assert message.provider_message_id == provider_id_pseudonym(wamid)


@responses.activate
def test_an_unlisted_code_keeps_the_http_reading(twilio_thread):
    # 503 without a listed code: transient; 400 with an unknown code: permanent
    responses.post(TWILIO_URL, json=twilio_error(20500, status=503), status=503)
    message = store_one(twilio_thread)
    assert (message.status, message.error_code) == ("queued", "20500")
    responses.replace(responses.POST, TWILIO_URL, json=twilio_error(21999), status=400)
    assert message_deliver(message_id=message.pk) == "failed"
