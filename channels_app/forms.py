"""The channel form: one field per provider setting, secrets write-only.

- Only the chosen provider's fields count: the others are ignored (the admin's
  `channel_form.js` hides them; without JavaScript every field shows, grouped by provider).
  The settings JSON is built from the fields; `api_base_url` only platform staff may change.
- Secrets are never rendered back. On an edit an empty secret keeps the stored one. A secret
  typed into a form that failed validation for another reason is carried to the next attempt
  as a sealed token (encrypted with the PII keys, signed, bound to the user, the channel and
  the field, valid for KEPT_SECRET_MAX_AGE) in a hidden input, never as its value.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core import signing
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from django.utils.safestring import SafeString

from channels_app.models import ChannelInstance, Provider
from channels_app.providers.sandbox import sandbox_enabled
from channels_app.services import (
    E164,
    SECRET_KEYS,
    SETTINGS_KEYS,
    channel_create,
    channel_platform_settings_changed,
    channel_update,
    channel_validate,
)
from core.crypto import DecryptionError, decrypt_str, encrypt_str

SECRET_FIELDS = ("account_sid", "auth_token", "access_token", "app_secret")
SETTINGS_FIELDS = ("messaging_service_sid", "phone_number_id", "waba_id", "api_base_url")
# The fields each provider uses (the others are ignored and hidden).
PROVIDER_FIELDS: dict[str, tuple[str, ...]] = {
    Provider.TWILIO: ("account_sid", "auth_token", "messaging_service_sid"),
    Provider.CLOUD_API: ("phone_number_id", "waba_id", "access_token", "app_secret"),
    Provider.SANDBOX: (),  # nothing to connect: no secrets, no settings
}
KEPT_SUFFIX = "__kept"
KEPT_SECRET_MAX_AGE = 15 * 60
_KEPT_SALT = "channels_app.forms.kept-secret"


def seal_secret(value: str, *, scope: str) -> str:
    """A token carrying `value` encrypted (PII keys), signed and bound to `scope`."""
    return signing.dumps([scope, encrypt_str(value)], salt=_KEPT_SALT, compress=True)


def unseal_secret(token: str, *, scope: str) -> str:
    """The value sealed by `seal_secret` for the same scope within KEPT_SECRET_MAX_AGE;
    raises ValidationError otherwise (forged, expired, another user's or field's)."""
    try:
        sealed_scope, encrypted = signing.loads(token, salt=_KEPT_SALT, max_age=KEPT_SECRET_MAX_AGE)
        if sealed_scope != scope:
            raise signing.BadSignature("scope")
        return decrypt_str(str(encrypted))
    except (signing.BadSignature, DecryptionError, TypeError, ValueError):
        raise ValidationError(
            "The value typed before has expired; type it again.", code="kept_expired"
        ) from None


class SecretInput(forms.PasswordInput):
    """A password input that never renders its value; after a failed validation it renders
    a hidden `<name>__kept` input holding the sealed value (`kept_token`)."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        attrs = {"autocomplete": "new-password", **(attrs or {})}
        super().__init__(attrs=attrs, render_value=False)
        self.kept_token = ""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> dict[str, str]:
        return {"typed": data.get(name) or "", "kept": data.get(name + KEPT_SUFFIX) or ""}

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data and name + KEPT_SUFFIX not in data

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        html = super().render(name, None, attrs, renderer)
        if self.kept_token:
            html += format_html(
                '<input type="hidden" name="{}" value="{}">', name + KEPT_SUFFIX, self.kept_token
            )
        return html


class SecretField(forms.CharField):
    """A write-only secret: what was typed, else what was carried from the last attempt
    (see `seal_secret`), else ''. `kept_scope` is set by the form."""

    widget = SecretInput

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, max_length=500, **kwargs)
        self.kept_scope = ""

    def clean(self, value: Any) -> str:
        if not isinstance(value, dict):
            value = {"typed": value or "", "kept": ""}
        typed = str(value.get("typed") or "").strip()
        if typed:
            return super().clean(typed)
        if value.get("kept"):
            return unseal_secret(str(value["kept"]), scope=self.kept_scope)
        return ""

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(isinstance(data, dict) and (data.get("typed") or data.get("kept")))


def _provider_attrs(provider: str) -> dict[str, str]:
    return {"data-channel-provider-field": provider, "class": "vTextField"}


class ChannelForm(forms.ModelForm):
    # Set by the admin from `tenants.access`: only platform staff may point a channel at
    # another API host (`api_base_url`).
    may_set_platform_settings = True
    # Set by the admin to the user's id: a kept secret is only accepted from the same user.
    kept_secret_owner = ""

    # Twilio
    account_sid = SecretField(
        label="Account SID",
        widget=SecretInput(_provider_attrs(Provider.TWILIO)),
        help_text="Twilio console → Account info (starts with AC). Leave both empty to use the "
        "platform's Twilio account.",
    )
    auth_token = SecretField(
        label="Auth token",
        widget=SecretInput(_provider_attrs(Provider.TWILIO)),
        help_text="Twilio console → Account info. Also checks the signature of Twilio's webhooks.",
    )
    messaging_service_sid = forms.CharField(
        label="Messaging service SID",
        required=False,
        max_length=64,
        widget=forms.TextInput(_provider_attrs(Provider.TWILIO)),
        help_text="Optional (starts with MG): send through a messaging service instead of "
        "from the number.",
    )
    # WhatsApp Cloud API
    phone_number_id = forms.CharField(
        label="Phone number ID",
        required=False,
        max_length=64,
        widget=forms.TextInput(_provider_attrs(Provider.CLOUD_API)),
        help_text="Meta → WhatsApp → API setup: the number's “Phone number ID” (not the number).",
    )
    waba_id = forms.CharField(
        label="WhatsApp Business Account ID",
        required=False,
        max_length=64,
        widget=forms.TextInput(_provider_attrs(Provider.CLOUD_API)),
        help_text="Optional; shown next to the phone number ID.",
    )
    access_token = SecretField(
        label="Access token",
        widget=SecretInput(_provider_attrs(Provider.CLOUD_API)),
        help_text="A system user's permanent token with whatsapp_business_messaging.",
    )
    app_secret = SecretField(
        label="App secret",
        widget=SecretInput(_provider_attrs(Provider.CLOUD_API)),
        help_text="Meta app → Settings → Basic. Checks the signature of Meta's webhooks; leave "
        "empty when the platform's Meta app sends them.",
    )
    # Platform staff only
    api_base_url = forms.URLField(
        label="API base URL",
        required=False,
        max_length=500,
        widget=forms.URLInput(attrs={"class": "vURLField"}),
        assume_scheme="https",
        help_text="Platform staff only: send this channel's requests to another host (a proxy "
        "or a test double). Empty: the provider's own API.",
    )

    class Meta:
        model = ChannelInstance
        fields = ["provider", "identifier", "phone_number", "is_active"]
        help_texts = {
            "identifier": "“whatsapp:” followed by the phone number, e.g. "
            "whatsapp:+14155238886; filled in from the phone number when empty.",
            "phone_number": "The WhatsApp number in E.164, e.g. +14155238886.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "provider" not in self.fields:  # a read-only page (view permission) has no fields
            return
        self.fields["identifier"].required = False
        self.fields["provider"].widget.attrs["data-channel-provider"] = ""
        if not sandbox_enabled() and self.instance.provider != Provider.SANDBOX:
            # Not offered where it cannot work (production); channel_validate refuses it too.
            self.fields["provider"].choices = [
                choice
                for choice in self.fields["provider"].choices
                if choice[0] != Provider.SANDBOX
            ]
        settings = (self.instance.settings or {}) if self.instance.pk else {}
        stored = (self.instance.secrets or {}) if self.instance.pk else {}
        scope_id = "new" if self.instance._state.adding else str(self.instance.pk)
        for name in SETTINGS_FIELDS:
            self.initial.setdefault(name, str(settings.get(name) or ""))
        for name in SECRET_FIELDS:
            field = self.fields[name]
            field.kept_scope = f"{self.kept_secret_owner}:{scope_id}:{self.prefix or ''}:{name}"
            if stored.get(name):
                field.widget.attrs["placeholder"] = "•••••• set; leave empty to keep"
        if not self.may_set_platform_settings:
            self.fields["api_base_url"].disabled = True

    # -- what the chosen provider uses ---------------------------------------------------------

    def _provider(self) -> str:
        return str(self.cleaned_data.get("provider") or "")

    def _settings(self) -> dict[str, Any]:
        """The settings JSON, built from the chosen provider's fields."""
        provider = self._provider()
        keys = SETTINGS_KEYS[Provider(provider)] if provider in Provider.values else set()
        return {
            name: self.cleaned_data[name]
            for name in SETTINGS_FIELDS
            if name in keys and self.cleaned_data.get(name)
        }

    def _secrets(self) -> dict[str, str]:
        """Typed (or kept) secrets of the chosen provider; secrets the channel stores for
        another provider map to '' (removed on save)."""
        provider = self._provider()
        keys = SECRET_KEYS[Provider(provider)] if provider in Provider.values else set()
        secrets = {
            name: self.cleaned_data[name]
            for name in SECRET_FIELDS
            if name in keys and self.cleaned_data.get(name)
        }
        if self.instance.pk and not self.instance._state.adding:
            for name in self.instance.secrets or {}:
                if name not in keys:
                    secrets[name] = ""
        return secrets

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors and "provider" in self.errors:
            return cleaned
        provider = self._provider()
        phone = cleaned.get("phone_number") or ""
        if not cleaned.get("identifier") and phone:
            cleaned["identifier"] = f"whatsapp:{phone}"
        stored = (self.instance.secrets or {}) if self.instance.pk else {}
        if provider == Provider.CLOUD_API:
            if not cleaned.get("phone_number_id") and "phone_number_id" not in self.errors:
                self.add_error("phone_number_id", "Required for the Cloud API.")
            if not cleaned.get("access_token") and not stored.get("access_token"):
                if "access_token" not in self.errors:
                    self.add_error("access_token", "Required for the Cloud API.")
        if provider == Provider.TWILIO:
            typed = [name for name in ("account_sid", "auth_token") if cleaned.get(name)]
            if len(typed) == 1 and not stored.get(
                "auth_token" if typed == ["account_sid"] else "account_sid"
            ):
                missing = "auth_token" if typed == ["account_sid"] else "account_sid"
                self.add_error(missing, "Set both the account SID and the auth token.")
            sid = cleaned.get("account_sid")
            if sid and not sid.startswith("AC"):
                self.add_error("account_sid", "A Twilio account SID starts with AC.")
        if self.errors:
            return cleaned
        settings = self._settings()
        if not self.may_set_platform_settings:
            current = self.instance.settings if self.instance.pk else {}
            changed = channel_platform_settings_changed(settings=settings, current=current)
            if changed:
                self.add_error(None, f"Only platform staff can set {', '.join(changed)}.")
                return cleaned
        secrets = dict(stored) if not self.instance._state.adding else {}
        secrets.update(self._secrets())
        try:
            channel_validate(
                provider=provider,
                identifier=cleaned.get("identifier", ""),
                phone_number=phone,
                settings=settings,
                secrets={k: v for k, v in secrets.items() if v},
                exclude_pk=self.instance.pk if not self.instance._state.adding else None,
            )
        except ValidationError as exc:
            self._add_service_errors(exc)
        return cleaned

    def _add_service_errors(self, exc: ValidationError) -> None:
        """The services' errors on the fields they are about (`settings` has no field here)."""
        for field, messages in exc.message_dict.items():
            if field == "settings":
                text = " ".join(messages)
                if "api_base_url" in text:
                    field = "api_base_url"
                elif "phone_number_id" in text:
                    field = "phone_number_id"
            self.add_error(field if field in self.fields else None, messages)

    def full_clean(self) -> None:
        """After a failed validation, carry each secret typed (or carried) this time to the
        next attempt as a sealed token; the secret itself is never rendered."""
        super().full_clean()
        if not self.is_bound or not self._errors:
            return
        for name in SECRET_FIELDS:
            field = self.fields.get(name)
            value = getattr(self, "cleaned_data", {}).get(name)
            if isinstance(field, SecretField) and value:
                field.widget.kept_token = seal_secret(value, scope=field.kept_scope)
                field.widget.attrs["placeholder"] = "•••••• kept from your last try"

    def save_through_services(self, *, tenant: Any) -> ChannelInstance:
        """Create or update through the channel services; errors land on the form fields."""
        data = self.cleaned_data
        try:
            if self.instance.pk is None or self.instance._state.adding:
                return channel_create(
                    tenant=tenant,
                    provider=data["provider"],
                    identifier=data.get("identifier", ""),
                    phone_number=data["phone_number"],
                    settings=self._settings(),
                    secrets=self._secrets(),
                    is_active=data.get("is_active", True),
                )
            return channel_update(
                channel=self.instance,
                data={
                    "provider": data["provider"],
                    "identifier": data.get("identifier", ""),
                    "phone_number": data["phone_number"],
                    "settings": self._settings(),
                    "secrets": self._secrets(),
                    "is_active": data.get("is_active", True),
                },
            )
        except ValidationError as exc:  # lost a race with another save since clean()
            self._update_errors(exc)
            raise


class TestMessageForm(forms.Form):
    to_phone = forms.CharField(
        label="Send to",
        max_length=20,
        help_text="A WhatsApp number in E.164, e.g. +14155238886. WhatsApp delivers a free-form "
        "message only to a number that wrote to this channel in the last 24 hours (Twilio's "
        "sandbox: a number that joined it).",
        widget=forms.TextInput(attrs={"autocomplete": "tel", "placeholder": "+14155238886"}),
    )

    def clean_to_phone(self) -> str:
        value = "".join(self.cleaned_data["to_phone"].split())
        if not E164.match(value):
            raise ValidationError("Must be an E.164 number such as +14155238886.")
        return value
