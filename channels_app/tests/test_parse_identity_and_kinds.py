"""The providers' parsers on peer payloads: who sent a message (phone, WhatsApp user id, both),
group messages, every message kind with its structured content, business-app echoes, and
what a reply to a contact without a phone looks like on the wire."""

import pytest

from channels_app.providers import (
    OutboundPayload,
    ParsedEcho,
    ParsedInbound,
    ParsedUserIdChange,
    cloud_api,
    twilio,
)
from core.crypto import provider_id_pseudonym

from .webhook_support import cloud_payload, load, twilio_params


def parse_cloud(name):
    return [item.item for item in cloud_api.parse_payload(cloud_payload(name, "PNID"))]


def only_message(name) -> ParsedInbound:
    (item,) = parse_cloud(name)
    assert isinstance(item, ParsedInbound)
    return item


# --- Cloud API: who sent it ---------------------------------------------------------------


def test_cloud_phone_and_user_id_are_both_kept():
    message = only_message("peer/courier_hello_user_id")
    assert (message.from_phone, message.from_user_id) == ("+5678", "US.1234")
    assert message.profile_name == "Kerry Fisher"
    assert message.text == "Hello World"


def test_cloud_sender_with_only_a_user_id_is_no_longer_skipped():
    message = only_message("peer/courier_hello_from_bsuid")
    assert (message.from_phone, message.from_user_id) == ("", "US.1234")
    assert message.profile_name == "Kerry Fisher"  # found through contacts[].user_id


def test_cloud_user_id_in_from_is_never_a_phone():
    message = only_message("peer/courier_hello_bsuid_in_from")
    assert (message.from_phone, message.from_user_id) == ("", "US.1234")


def test_cloud_bsuid_only_user_from_chatwoot():
    message = only_message("peer/chatwoot_bsuid_only")
    assert (message.from_phone, message.from_user_id) == ("", "IN.2081978709342942")
    assert (message.text, message.profile_name) == ("testing bsuid", "Muhsin")


def test_cloud_malformed_user_id_is_ignored_and_the_phone_kept():
    message = only_message("peer/courier_hello_invalid_user_id")
    assert (message.from_phone, message.from_user_id) == ("+5678", "")


@pytest.mark.parametrize("name", ["peer/courier_no_from", "peer/courier_invalid_from"])
def test_cloud_message_without_a_valid_sender_is_skipped(name):
    assert parse_cloud(name) == []


def test_cloud_user_id_change_is_parsed_and_other_system_messages_skipped():
    (change,) = parse_cloud("peer/chatwoot_system_user_changed_user_id")
    assert change == ParsedUserIdChange(
        provider_message_id="wamid.SYSTEM_MESSAGE_ID",
        previous_user_id="IN.PREVIOUSBSUID",
        user_id="IN.CURRENTBSUID",
    )
    payload = cloud_payload("peer/chatwoot_system_user_changed_user_id", "PNID")
    system = payload["entry"][0]["changes"][0]["value"]["messages"][0]["system"]
    system["type"] = "customer_changed_number"
    assert cloud_api.parse_payload(payload) == []


def test_cloud_user_id_only_in_contacts_is_used():
    payload = cloud_payload("peer/courier_hello_user_id", "PNID")
    del payload["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"]
    (item,) = cloud_api.parse_payload(payload)
    assert (item.item.from_phone, item.item.from_user_id) == ("+5678", "US.1234")


def test_cloud_group_message_carries_its_group():
    message = only_message("peer/courier_group_message")
    assert message.group_id == "555555555"
    assert message.from_phone == "+5678"


# --- Cloud API: kinds -------------------------------------------------------------------------


def test_cloud_flow_reply_keeps_the_form_answers():
    message = only_message("peer/courier_nfm_reply")
    assert (message.kind, message.text, message.raw_type) == (
        "flow_reply",
        "Sent",
        "interactive.nfm_reply",
    )
    assert message.content == {
        "flow_reply": {
            "name": "flow",
            "response": {"flow_token": "fl0w+t0k3n", "first_name": "Bob", "age": "32"},
        }
    }


def test_cloud_flow_reply_with_nested_answers():
    message = only_message("peer/chatwoot_nfm_flow_response")
    assert message.kind == "flow_reply"
    assert message.content["flow_reply"]["response"]["appointment"] == {
        "day": "Monday",
        "windows": ["morning", "afternoon"],
    }


def test_cloud_flow_reply_that_is_not_an_object_keeps_only_the_name():
    message = only_message("peer/courier_nfm_reply_non_object")
    assert message.kind == "flow_reply"
    assert message.content == {"flow_reply": {"name": "flow", "response": {}}}


def test_cloud_contact_cards():
    message = only_message("peer/chatwoot_contacts_message")
    assert message.kind == "contacts"
    (card,) = message.content["contacts"]
    assert card["name"]["formatted_name"] == "Diana Digital"
    assert card["phones"] == [{"phone": "+255718573302"}]


def test_cloud_ad_referral_is_context_of_a_text():
    message = only_message("peer/chatwoot_referral_ctwa")
    assert (message.kind, message.text) == ("text", "Hello nielekeze")
    assert (message.from_phone, message.from_user_id) == ("+255718573302", "TZ.1040042605869930")
    referral = message.content["referral"]
    assert referral["source_type"] == "ad"
    assert referral["ctwa_clid"] == "AfhcQdP2E4A8wWpeb1FqUzUi"
    assert referral["headline"] == "Diana Digital"


def test_cloud_legacy_voice_is_audio():
    message = only_message("peer/courier_voice")
    assert message.kind == "audio"
    (media,) = message.media
    assert (media.media_type, media.provider_media_id) == ("audio", "id_voice")
    assert media.content_type == "audio/ogg; codecs=opus"


def test_cloud_location():
    message = only_message("peer/courier_location")
    assert message.kind == "location"
    assert (message.location.latitude, message.location.longitude) == (0.0, 1.0)


def test_cloud_reaction_and_order():
    payload = cloud_payload("text", "PNID")
    value = payload["entry"][0]["changes"][0]["value"]
    base = {"from": "16505551234", "timestamp": "1749416383"}
    value["messages"] = [
        {
            **base,
            "id": "wamid.R",
            "type": "reaction",
            "reaction": {"message_id": "wamid.OURS", "emoji": "👍"},
        },
        {
            **base,
            "id": "wamid.O",
            "type": "order",
            "order": {
                "catalog_id": "cat1",
                "text": "for tomorrow",
                "product_items": [
                    {
                        "product_retailer_id": "sku-1",
                        "quantity": 2,
                        "item_price": 9.5,
                        "currency": "BRL",
                    }
                ],
            },
        },
    ]
    reaction, order = (item.item for item in cloud_api.parse_payload(payload))
    assert reaction.kind == "reaction"
    assert reaction.content == {
        "reaction": {"emoji": "👍", "message_id": provider_id_pseudonym("wamid.OURS")}
    }
    assert (order.kind, order.text) == ("order", "for tomorrow")
    assert order.content["order"] == {
        "catalog_id": "cat1",
        "product_items": [
            {"product_retailer_id": "sku-1", "quantity": 2, "item_price": 9.5, "currency": "BRL"}
        ],
    }


def test_cloud_business_app_echo():
    (echo,) = parse_cloud("peer/chatwoot_smb_message_echo")
    assert isinstance(echo, ParsedEcho)
    assert (echo.to_phone, echo.to_user_id) == ("+919745786257", "IN.2081978709342942")
    assert (echo.kind, echo.text) == ("text", "echo reply")
    assert echo.provider_message_id == "wamid.cloud-echo-message"


# --- Twilio -----------------------------------------------------------------------------------


def test_twilio_user_id_beside_a_phone():
    message = twilio.parse_form(twilio_params("peer/courier_waReceiveBSUIDValid"))
    assert (message.from_phone, message.from_user_id) == ("+14133881111", "US.1234")


def test_twilio_from_a_user_id_is_never_cut_to_digits():
    message = twilio.parse_form(twilio_params("peer/courier_waReceiveFromBSUID"))
    assert (message.from_phone, message.from_user_id) == ("", "US.1234")
    assert message.text == "Msg"


def test_twilio_malformed_external_user_id_is_ignored():
    message = twilio.parse_form(twilio_params("peer/courier_waReceiveBSUIDInvalid"))
    assert (message.from_phone, message.from_user_id) == ("+14133881111", "")


@pytest.mark.parametrize(
    "name", ["peer/courier_waReceivePrefixlessURN", "peer/courier_receiveValid"]
)
def test_twilio_post_without_whatsapp_prefix_is_refused(name):
    with pytest.raises(twilio.NotWhatsAppError):
        twilio.parse_form(twilio_params(name))


def test_twilio_from_that_is_neither_phone_nor_user_id_is_refused():
    with pytest.raises(twilio.TwilioParseError):
        twilio.parse_form(twilio_params("inbound_text", From="whatsapp:bla"))


def test_twilio_status_callbacks_are_not_checked_for_the_prefix():
    status = twilio.parse_form(load("twilio/status_delivered.json"))
    assert status.status == "delivered"


# --- Sending to a contact without a phone -------------------------------------------------


def test_cloud_reply_to_a_user_id_goes_in_recipient_without_to():
    (body,) = cloud_api.build_message(OutboundPayload(to_phone="", to_user_id="US.1234", text="Hi"))
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "recipient": "US.1234",
        "type": "text",
        "text": {"preview_url": False, "body": "Hi"},
    }


def test_cloud_reply_prefers_the_phone():
    (body,) = cloud_api.build_message(
        OutboundPayload(to_phone="+5678", to_user_id="US.1234", text="Hi")
    )
    assert body["to"] == "5678"
    assert "recipient" not in body


def test_twilio_ad_referral_is_kept():
    params = twilio_params(
        "inbound_text",
        ReferralSourceType="ad",
        ReferralSourceUrl="https://fb.me/abc",
        ReferralCtwaClid="ARAkLkA8rmlFeiCktEJQ",
        ReferralNumMedia="0",
    )
    message = twilio.parse_form(params)
    assert message.content == {
        "referral": {
            "source_type": "ad",
            "source_url": "https://fb.me/abc",
            "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
        }
    }


@pytest.mark.parametrize(
    ("sender", "user_id", "expected"),
    [
        ("16505551234", None, ("+16505551234", "")),
        ("+16505551234", None, ("+16505551234", "")),
        ("US.1234", None, ("", "US.1234")),
        ("IN.2081978709342942", "IN.2081978709342942", ("", "IN.2081978709342942")),
        ("1650 555 1234", None, ("", "")),  # Meta sends digits only: anything else is refused
        (None, "bla", ("", "")),
    ],
)
def test_cloud_sender_identity(sender, user_id, expected):
    assert cloud_api.sender_identity(phone_field=sender, user_id_field=user_id) == expected


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("whatsapp:+5521987654321", ("+5521987654321", "")),
        ("whatsapp:5521987654321", ("+5521987654321", "")),
        ("WhatsApp:+5521987654321", ("+5521987654321", "")),
        ("whatsapp:US.1234", ("", "US.1234")),
        ("whatsapp:+55 21", ("", "")),
    ],
)
def test_twilio_sender_identity(sender, expected):
    assert twilio.sender_identity({"From": sender}) == expected
