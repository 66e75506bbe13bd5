"""PII encryption at rest (Fernet, several keys) and HMAC blind indexes.

The first key of `PII_ENCRYPTION_KEYS` encrypts; every key decrypts, so keys can be rotated with
`rotate_pii_keys`. The blind index key (`PII_LOOKUP_KEY`) is separate and never rotated with them.
"""

import hashlib
import hmac
import re
import unicodedata
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured key.

    The message never contains the ciphertext or any part of the value.
    """


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"PII_ENCRYPTION_KEYS: key #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from exc
    if not fernets:
        raise ImproperlyConfigured("PII_ENCRYPTION_KEYS is empty.")
    return MultiFernet(fernets)


def _fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.PII_ENCRYPTION_KEYS))


def encrypt_str(value: str) -> str:
    """Encrypt with the newest key. The token is url-safe ASCII."""
    return _fernet().encrypt(value.encode("utf-8")).decode("ascii")


def decrypt_str(token: str) -> str:
    """Decrypt with any configured key; raise DecryptionError when none fits."""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise DecryptionError(
            "An encrypted value could not be decrypted with any key in PII_ENCRYPTION_KEYS "
            "(was the key that wrote it removed?)."
        ) from exc


def needs_rotation(token: str) -> bool:
    """True when the token was not written by the newest key."""
    primary = Fernet(settings.PII_ENCRYPTION_KEYS[0].encode())
    try:
        primary.decrypt(token.encode("ascii"))
    except InvalidToken:
        return True
    return False


def rotate_token(token: str) -> str:
    """Re-encrypt a token with the newest key (MultiFernet.rotate)."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise DecryptionError(
            "An encrypted value could not be decrypted with any key in PII_ENCRYPTION_KEYS."
        ) from exc


def blind_index(value: str, *, purpose: str) -> str:
    """A keyed HMAC-SHA256 of a normalised value: equal inputs give equal indexes.

    `purpose` separates the index spaces (a phone index never matches an email index).
    """
    key = settings.PII_LOOKUP_KEY.encode("utf-8")
    message = f"{purpose}:{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


WAMID_PREFIX = "wamid."
_PSEUDONYM_PREFIX = "wamid.h:"


# Ids longer than this (Instagram's message ids run to 150 characters and more) are kept as
# a keyed hash too: the column holds 128.
PROVIDER_ID_MAX = 120
_LONG_PSEUDONYM_PREFIX = "long.h:"


def provider_id_pseudonym(value: str) -> str:
    """What we store for a provider's message id. A WhatsApp Cloud API id (`wamid.…`) is
    base64 that contains the contact's phone number, so it is kept as a keyed hash: equal ids
    still compare equal (duplicates, status callbacks), and nothing can be decoded from it.
    An id longer than PROVIDER_ID_MAX (an Instagram `mid`) is hashed the same way, so it fits
    the column whole (a cut id could make two messages one). Other ids (Twilio's `SM…`)
    carry no personal data and stay as they are. Idempotent."""
    if value.startswith((_PSEUDONYM_PREFIX, _LONG_PSEUDONYM_PREFIX)):
        return value
    if value.startswith(WAMID_PREFIX):
        return _PSEUDONYM_PREFIX + blind_index(value, purpose="provider-id")[:48]
    if len(value) > PROVIDER_ID_MAX:
        return _LONG_PSEUDONYM_PREFIX + blind_index(value, purpose="provider-id")[:48]
    return value


# What may separate the digits of a phone number as people and providers write it.
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
# E.164: a country code and subscriber number of at most 15 digits, never starting with 0.
_E164_DIGITS = re.compile(r"[1-9][0-9]{0,14}")  # ASCII digits only: "٢" is no phone digit
# A WhatsApp business-scoped user id (BSUID): an ISO country code, a period, and up to 128
# letters and digits (a parent BSUID has `ENT.` after the country code): `US.13491208655302741918`.
_WA_USER_ID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


def _strip_channel_prefix(raw: str) -> str:
    value = (raw or "").strip()
    if value.lower().startswith("whatsapp:"):
        value = value[len("whatsapp:") :].strip()
    return value


def normalize_phone(raw: str) -> str:
    """The E.164 form of a phone number (`whatsapp:+55 11 9...` -> `+55119...`), or '' when
    `raw` is not a phone number.

    Only digits, an optional leading `+` (or `whatsapp:` prefix) and the usual separators
    (spaces, dashes, dots, parentheses) are accepted, at most 15 digits, not starting with 0: a
    WhatsApp user id such as `US.1234`, or anything else with letters, dots or other signs, is
    never turned into a number. The number plan (which country codes exist, how long their
    numbers are) is not checked: providers deliver ids in this shape, and test numbers must pass.
    """
    value = _strip_channel_prefix(raw)
    if value.startswith("+"):
        value = value[1:]
    digits = _PHONE_SEPARATORS.sub("", value)
    if not _E164_DIGITS.fullmatch(digits):
        return ""
    return f"+{digits}"


def phone_lookup(raw: str) -> str:
    """The blind index of a phone number, or '' for an empty or invalid one."""
    phone = normalize_phone(raw)
    return blind_index(phone, purpose="phone") if phone else ""


def normalize_wa_user_id(raw: str) -> str:
    """A WhatsApp business-scoped user id as the provider wrote it (`whatsapp:US.1234` ->
    `US.1234`), or '' when `raw` is not one. Case matters: it is sent back exactly."""
    value = _strip_channel_prefix(raw)
    return value if _WA_USER_ID.fullmatch(value) else ""


def wa_user_lookup(raw: str) -> str:
    """The blind index of a WhatsApp user id, or '' for an empty or invalid one."""
    user_id = normalize_wa_user_id(raw)
    return blind_index(user_id, purpose="wa-user-id") if user_id else ""


# An Instagram-scoped user id (IGSID): the id Meta gives a person for one Instagram professional
# account, digits in practice; letters, `.`, `_` and `-` are tolerated, never a `+` or spaces.
_IG_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def normalize_ig_user_id(raw: str) -> str:
    """An Instagram-scoped user id as Meta wrote it (`instagram:1784…` -> `1784…`), or ''
    when `raw` is not one. Never a phone: it is stored, indexed and sent only as an Instagram
    id (`Contact.ig_user_id`)."""
    value = (raw or "").strip()
    if value.lower().startswith("instagram:"):
        value = value[len("instagram:") :].strip()
    return value if _IG_USER_ID.fullmatch(value) else ""


def ig_user_lookup(raw: str) -> str:
    """The blind index of an Instagram-scoped user id, or '' for an empty or invalid one. Its
    own index space (`ig-user-id`): the same digits as a phone or a WhatsApp id never match."""
    user_id = normalize_ig_user_id(raw)
    return blind_index(user_id, purpose="ig-user-id") if user_id else ""


NAME_INDEX_WORDS = 20


def name_words(raw: str) -> list[str]:
    """The words of a name as they are compared: case and accents ignored ("José" = "jose"),
    split on anything that is not a letter or digit, each once, in order."""
    decomposed = unicodedata.normalize("NFKD", raw or "").casefold()
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words: list[str] = []
    for word in re.findall(r"\w+", plain):
        if word not in words:
            words.append(word)
    return words


def name_word_lookup(word: str) -> str:
    """The blind index of one normalised name word (a keyed hash: 64 bits are plenty to tell a
    tenant's contacts apart, and nothing about the word can be read from it)."""
    return blind_index(word, purpose="name-word")[:16]


def name_index(raw: str) -> str:
    """What `Contact.name_index` stores for a name: the lookups of its first NAME_INDEX_WORDS
    words, space-separated and space-framed (`" a1b2… c3d4… "`), so a search for a word is a
    containment test for `" <lookup> "`. Empty for an empty name."""
    lookups = [name_word_lookup(word) for word in name_words(raw)[:NAME_INDEX_WORDS]]
    return f" {' '.join(lookups)} " if lookups else ""
