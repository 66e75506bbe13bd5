"""Hypothesis at the webhooks: generated form posts and JSON bodies, signed and unsigned.

Whatever arrives, the answer is 2xx or 4xx (the test client re-raises any exception a view
lets through, so a 500 fails the test too), an unsigned or wrongly signed request changes
nothing, and the database never holds a partial conversation: every contact has a thread,
every thread a message, and message, thread and contact agree on tenant and channel.
No request leaves the process: `responses` intercepts every HTTP call (media downloads).
"""

import json

import pytest
import responses
from django.db.models import Count, F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from channels_app.tests.webhook_support import WEBHOOK, hub_signature, twilio_signature
from conversations.models import ChatThread, Contact, Message, MessageAttachment
from tests import factories

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TWILIO_NUMBER = "whatsapp:+15550000001"
PHONE_NUMBER_ID = "106540352242922"

text = st.text(max_size=80)
weird = st.one_of(
    text,
    st.sampled_from(["", " ", "\x00", "whatsapp:", "whatsapp:+", "+", "0", "-1", "1e9", "NaN"]),
    st.text(alphabet="0123456789+ :whatsap", max_size=30),
    st.text(min_size=200, max_size=3000),
    st.text(alphabet="a\x00\x01\u200b\ufeff", max_size=10),
)
# JSON may also carry lone surrogates ("\ud800" is a valid JSON escape).
weird_json = st.one_of(weird, st.text(st.characters(blacklist_categories=()), max_size=10))

TWILIO_KEYS = [
    "MessageSid",
    "SmsSid",
    "SmsMessageSid",
    "From",
    "To",
    "Body",
    "ProfileName",
    "WaId",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "MessageType",
    "Latitude",
    "Longitude",
    "Label",
    "Address",
    "ButtonPayload",
    "ButtonText",
    "ListId",
    "ListTitle",
    "MessageStatus",
    "ErrorCode",
    "ErrorMessage",
    "OriginalRepliedMessageSid",
]


@st.composite
def twilio_forms(draw):
    form = draw(st.dictionaries(st.sampled_from(TWILIO_KEYS), weird, max_size=12))
    if draw(st.booleans()):
        form["To"] = TWILIO_NUMBER
        form.setdefault("From", "whatsapp:+55119" + draw(st.text("0123456789", max_size=8)))
        form.setdefault("MessageSid", "SM" + draw(st.text("0123456789abcdef", max_size=32)))
    if form.get("MessageStatus") and draw(st.booleans()):
        form["From"], form["To"] = TWILIO_NUMBER, form.get("From", "")
    extra = draw(st.dictionaries(st.text(min_size=1, max_size=12), text, max_size=3))
    return {**extra, **form}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
MESSAGE_TYPES = [
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "interactive",
    "button",
    "reaction",
    "unsupported",
    "contacts",
]


@st.composite
def cloud_messages(draw):
    kind = draw(st.sampled_from(MESSAGE_TYPES))
    message = {
        "from": draw(st.one_of(st.text("0123456789", min_size=1, max_size=15), weird_json)),
        "id": draw(st.one_of(st.just("wamid.") | text, text.map(lambda t: "wamid." + t))),
        "timestamp": draw(st.one_of(st.just("1749416383"), weird_json)),
        "type": kind,
    }
    if draw(st.booleans()):
        message[kind] = draw(
            st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "body": weird_json,
                        "id": weird_json,
                        "mime_type": weird_json,
                        "caption": weird_json,
                        "latitude": st.one_of(st.floats(allow_nan=False), weird_json),
                        "longitude": st.one_of(st.floats(allow_nan=False), weird_json),
                        "button_reply": json_values,
                        "list_reply": json_values,
                        "type": weird_json,
                        "payload": weird_json,
                    },
                ),
            )
        )
    return message


@st.composite
def cloud_bodies(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(json_values)
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"phone_number_id": draw(st.sampled_from([PHONE_NUMBER_ID, "999", ""]))},
    }
    if draw(st.booleans()):
        value["contacts"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"profile": st.fixed_dictionaries({"name": weird_json}), "wa_id": weird_json}
                ),
                max_size=2,
            )
            | json_values
        )
    if draw(st.booleans()):
        value["messages"] = draw(st.lists(cloud_messages(), max_size=3) | json_values)
    if draw(st.booleans()):
        value["statuses"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"id": weird_json, "status": weird_json},
                    optional={
                        "timestamp": weird_json,
                        "errors": json_values,
                        "recipient_id": weird_json,
                    },
                ),
                max_size=2,
            )
            | json_values
        )
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    if draw(st.integers(0, 5)) == 0:
        body["entry"] = draw(json_values)
    return body


def _snapshot():
    return (
        Contact.all_objects.count(),
        ChatThread.all_objects.count(),
        Message.all_objects.count(),
        MessageAttachment.all_objects.count(),
    )


def _assert_no_partial_rows():
    assert not Contact.all_objects.annotate(n=Count("threads")).filter(n=0).exists()
    assert not ChatThread.all_objects.annotate(n=Count("messages")).filter(n=0).exists()
    assert not Message.all_objects.exclude(channel_id=F("thread__channel_id")).exists()
    assert not Message.all_objects.exclude(tenant_id=F("thread__tenant_id")).exists()
    assert not ChatThread.all_objects.exclude(tenant_id=F("contact__tenant_id")).exists()


@pytest.fixture
def channels(tenant, settings):
    settings.MEDIA_ROOT = settings.MEDIA_ROOT  # in-memory storage in the test settings
    twilio = factories.TwilioChannelFactory(tenant=tenant, phone_number="+15550000001")
    cloud = factories.CloudChannelFactory(
        tenant=tenant, settings={"phone_number_id": PHONE_NUMBER_ID}
    )
    return twilio, cloud


@pytest.fixture
def no_network():
    # Every outgoing HTTP call (media downloads, sends) fails fast instead of leaving.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _answered(response):
    assert 200 <= response.status_code < 500, response.status_code


@pytest.mark.django_db
@FUZZ
@given(form=twilio_forms(), signed=st.booleans())
@example(
    form={"To": TWILIO_NUMBER, "From": "whatsapp:+5511\x00", "MessageSid": "SM\x00", "Label": "a"},
    signed=True,
)
@example(
    form={
        "To": TWILIO_NUMBER,
        "From": "whatsapp:+551199",
        "MessageSid": "SMx",
        "ButtonPayload": "\x00",
        "NumMedia": "1",
        "MediaUrl0": "https://api.twilio.test/m",
        "MediaContentType0": "image/\x00",
    },
    signed=True,
)
def test_twilio_form_posts(client, channels, no_network, form, signed):
    before = _snapshot()
    headers = {}
    if signed:
        headers["HTTP_X_TWILIO_SIGNATURE"] = twilio_signature("chan-token", WEBHOOK, form)
    elif form:
        headers["HTTP_X_TWILIO_SIGNATURE"] = "bm90IGEgc2lnbmF0dXJl"

    response = client.post(WEBHOOK, data=form, **headers)

    _answered(response)
    if not signed:
        assert response.status_code == 403
        assert _snapshot() == before
    _assert_no_partial_rows()


NUL_AND_SURROGATES = {
    "entry": [
        {
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "metadata": {"phone_number_id": PHONE_NUMBER_ID + "\x00"},
                        "contacts": [{"profile": {"name": "\ud800"}, "wa_id": "5511"}],
                        "messages": [
                            {
                                "from": "5511",
                                "id": "wamid.\x00\udfff",
                                "type": "interactive",
                                "interactive": {
                                    "type": "button_reply",
                                    "button_reply": {"id": "\x00", "title": "\ud83d"},
                                },
                            }
                        ],
                    },
                }
            ]
        }
    ]
}


@pytest.mark.django_db
@FUZZ
@given(body=cloud_bodies(), signed=st.booleans())
@example(body=NUL_AND_SURROGATES, signed=True)
@example(body={"entry": True}, signed=False)
@example(body={"entry": [{"changes": [{"value": {"metadata": [], "contacts": 3}}]}]}, signed=True)
def test_cloud_api_json_posts(client, channels, no_network, body, signed):
    before = _snapshot()
    raw = json.dumps(body).encode()
    signature = hub_signature(raw) if signed else "sha256=" + "ab" * 32

    response = client.post(
        WEBHOOK, data=raw, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature
    )

    _answered(response)
    if not signed:
        assert response.status_code == 403
        assert _snapshot() == before
    _assert_no_partial_rows()


@pytest.mark.django_db
@FUZZ
@given(
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data",
        ]
    ),
    signed=st.booleans(),
)
def test_arbitrary_bytes(client, channels, no_network, raw, content_type, signed):
    before = _snapshot()
    headers = {"HTTP_X_HUB_SIGNATURE_256": hub_signature(raw)} if signed else {}

    response = client.post(WEBHOOK, data=raw, content_type=content_type, **headers)

    _answered(response)
    if not signed:
        assert _snapshot() == before
    _assert_no_partial_rows()


IG_ACCOUNT = "17841400000000001"
INSTAGRAM_WEBHOOK = "/api/webhooks/instagram"
json_or_weird = st.one_of(json_values, weird_json)
ig_ids = st.one_of(st.text("0123456789", min_size=1, max_size=20), weird_json)


@st.composite
def instagram_events(draw):
    event = {
        "sender": draw(st.one_of(st.fixed_dictionaries({"id": ig_ids}), json_values)),
        "recipient": {"id": IG_ACCOUNT},
        "timestamp": draw(st.one_of(st.just(1764739999876), weird_json)),
    }
    kind = draw(st.sampled_from(["message", "reaction", "read", "message_edit", "postback", "x"]))
    event[kind] = draw(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "mid": st.one_of(text, st.text(min_size=100, max_size=400), weird_json),
                    "text": json_or_weird,
                    "attachments": st.one_of(
                        json_values,
                        st.lists(
                            st.fixed_dictionaries(
                                {
                                    "type": st.one_of(
                                        st.sampled_from(["image", "file", "share", "x"]),
                                        weird_json,
                                    ),
                                    "payload": st.one_of(
                                        json_values,
                                        st.fixed_dictionaries({"url": json_or_weird}),
                                    ),
                                }
                            ),
                            max_size=2,
                        ),
                    ),
                    "is_echo": json_or_weird,
                    "is_deleted": json_or_weird,
                    "is_unsupported": json_or_weird,
                    "quick_reply": json_or_weird,
                    "reply_to": json_or_weird,
                    "referral": json_or_weird,
                    "action": json_or_weird,
                    "emoji": json_or_weird,
                    "num_edit": json_or_weird,
                    "payload": json_or_weird,
                    "title": json_or_weird,
                },
            ),
        )
    )
    return event


@st.composite
def instagram_bodies(draw):
    if draw(st.integers(0, 5)) == 0:
        return draw(json_values)
    entry = {
        "id": draw(st.one_of(st.sampled_from([IG_ACCOUNT, "999"]), weird_json)),
        "time": 1764740000123,
        "messaging": draw(st.lists(instagram_events(), max_size=3) | json_values),
    }
    body = {"object": draw(st.sampled_from(["instagram", "instagram", "page"])), "entry": [entry]}
    if draw(st.integers(0, 5)) == 0:
        body["entry"] = draw(json_values)
    return body


@pytest.mark.django_db
@FUZZ
@given(body=instagram_bodies(), signed=st.booleans())
@example(
    body={
        "object": "instagram",
        "entry": [
            {
                "id": IG_ACCOUNT,
                "messaging": [
                    {
                        "sender": {"id": "123\x00"},
                        "message": {"mid": "m\x00\udfff", "text": "\ud800", "quick_reply": 3},
                    },
                    {"sender": {"id": "123"}, "reaction": {"mid": "m", "emoji": ["x"]}},
                    {"sender": {"id": "123"}, "message_edit": {"mid": "m", "num_edit": "x"}},
                ],
            }
        ],
    },
    signed=True,
)
def test_instagram_json_posts(client, tenant, no_network, body, signed):
    from channels_app.services import channel_create

    if not tenant.channels.exists():
        channel_create(
            tenant=tenant,
            provider="instagram",
            settings={"instagram_account_id": IG_ACCOUNT},
            secrets={"access_token": "IGAA-fuzz"},
        )
    before = _snapshot()
    raw = json.dumps(body).encode()
    signature = hub_signature(raw) if signed else "sha256=" + "ab" * 32

    response = client.post(
        INSTAGRAM_WEBHOOK,
        data=raw,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
    )

    _answered(response)
    if not signed:
        assert response.status_code == 403
        assert _snapshot() == before
    _assert_no_partial_rows()
