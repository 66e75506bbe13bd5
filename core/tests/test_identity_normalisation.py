"""Phone numbers and WhatsApp user ids: what each normaliser accepts, and that one is never
taken for the other."""

import pytest

from core.crypto import normalize_phone, normalize_wa_user_id, phone_lookup, wa_user_lookup


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("whatsapp:+5521987654321", "+5521987654321"),
        ("+55 (11) 98888-7777", "+5511988887777"),
        ("+33 6.12.34.56.78", "+33612345678"),
        ("16505551234", "+16505551234"),
        ("5678", "+5678"),  # courier's test wa_id: the shape of a number, so a number
        ("+123456789012345", "+123456789012345"),  # 15 digits: E.164's maximum
    ],
)
def test_phone_numbers_are_normalised_to_e164(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "whatsapp:US.1234",  # a user id: once cut to "+1234"
        "US.1234",
        "IN.2081978709342942",  # a real-looking user id: once a plausible 16-digit number
        "bla",
        "+1234567890123456",  # 16 digits
        "+0123456",  # no country code starts with 0
        "+1 234 / 567",
        "",
        "whatsapp:",
        "+55 11 9888 ext 7",
    ],
)
def test_anything_else_is_not_a_phone_number(raw):
    assert normalize_phone(raw) == ""
    assert phone_lookup(raw) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("US.1234", "US.1234"),
        ("whatsapp:US.1234", "US.1234"),
        ("IN.2081978709342942", "IN.2081978709342942"),
        ("US.ENT.11815799212886844830", "US.ENT.11815799212886844830"),
        ("US.13491208655302741918abcDEF", "US.13491208655302741918abcDEF"),
    ],
)
def test_whatsapp_user_ids_are_kept_exactly(raw, expected):
    assert normalize_wa_user_id(raw) == expected


@pytest.mark.parametrize(
    "raw", ["foo_bar", "5678", "+16505551234", "us.1234", "USA.1234", "US.", "US.12 34", ""]
)
def test_anything_else_is_not_a_user_id(raw):
    assert normalize_wa_user_id(raw) == ""
    assert wa_user_lookup(raw) == ""


def test_lookups_of_phone_and_user_id_never_collide(settings):
    # the digits of "US.1234" and the phone "+1234" must not index the same person
    assert wa_user_lookup("US.1234") != phone_lookup("+1234")
    assert wa_user_lookup("whatsapp:US.1234") == wa_user_lookup("US.1234")
    assert wa_user_lookup("US.1234") != wa_user_lookup("US.1235")
