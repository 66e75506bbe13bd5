"""Model fields whose values are encrypted at rest with the PII keys (see core.crypto)."""

import json
from typing import Any

from django.db import models

from core.crypto import decrypt_str, encrypt_str, provider_id_pseudonym


class EncryptedTextField(models.TextField):
    """A text value stored as a Fernet token; None stays NULL and '' stays ''.

    Reading a value that no configured key can decrypt raises DecryptionError: a ciphertext is
    never returned as if it were the value. Encrypted values cannot be filtered on; use a blind
    index field for lookups.
    """

    description = "Text encrypted with the PII keys"

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_str(str(value))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return value
        return decrypt_str(value)


class EncryptedJSONField(models.TextField):
    """A JSON-serialisable value (typically a dict of secrets) stored encrypted; an empty dict
    is stored as ''."""

    description = "JSON encrypted with the PII keys"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", dict)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        if value == {}:
            return ""  # nothing to hide, and read back as {}; saves a Fernet token per row
        return encrypt_str(json.dumps(value, sort_keys=True))

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return {}
        return json.loads(decrypt_str(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj))


class ProviderIdField(models.CharField):
    """A provider's message id, stored as `provider_id_pseudonym` (WhatsApp ids contain the
    phone number). Lookups go through the same function, so filtering by the id the provider
    sends finds the row."""

    description = "Provider message id (WhatsApp ids pseudonymised)"

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if isinstance(value, str):
            return provider_id_pseudonym(value)
        return value
