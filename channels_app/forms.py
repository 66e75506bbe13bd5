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

from dataclasses import dataclass
from typing import Any

from django import forms
from django.core import signing
from django.core.exceptions import ValidationError
from django.utils.html import format_html
from django.utils.safestring import SafeString

from channels_app.models import ChannelInstance
from channels_app.providers import Provider, providers
from channels_app.providers.base import ProviderField
from channels_app.services import (
    E164,
    channel_create,
    channel_platform_settings_changed,
    channel_update,
    channel_validate,
)
from core.crypto import DecryptionError, decrypt_str, encrypt_str

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


@dataclass(frozen=True)
class FormField:
    """One input of the channel form: a provider's setting or secret. `name` is the field's
    key, or `<code>_<key>` when an earlier provider has a field with the same key; a
    platform-only field (`api_base_url`) is one input shared by every provider."""

    name: str
    field: ProviderField
    codes: tuple[str, ...]


def form_fields() -> list[FormField]:
    """The inputs for every installed provider's settings and secrets, in the setting's
    order (each provider's settings, then its secrets)."""
    found: dict[str, FormField] = {}
    for provider in providers().values():
        for field in (*provider.settings_fields, *provider.secret_fields):
            shared = found.get(field.key)
            if field.platform_only and shared is not None:
                found[field.key] = FormField(
                    field.key, shared.field, (*shared.codes, provider.code)
                )
                continue
            name = field.key if shared is None else f"{provider.code}_{field.key}"
            found[name] = FormField(name, field, (provider.code,))
    return list(found.values())


def provider_form_fields(provider: Provider) -> list[FormField]:
    """The inputs of one provider, platform-only ones left out (they have their own place)."""
    return [
        item
        for item in form_fields()
        if provider.code in item.codes and not item.field.platform_only
    ]


def _form_field(item: FormField) -> forms.Field:
    field = item.field
    if field.platform_only and field.url:
        return forms.URLField(
            label=field.label,
            required=False,
            max_length=field.max_length,
            widget=forms.URLInput(attrs={"class": "vURLField"}),
            assume_scheme="https",
            help_text=field.help_text,
        )
    attrs = {"data-channel-provider-field": " ".join(item.codes), "class": "vTextField"}
    if field.secret:
        return SecretField(label=field.label, widget=SecretInput(attrs), help_text=field.help_text)
    return forms.CharField(
        label=field.label,
        required=False,
        max_length=field.max_length,
        widget=forms.TextInput(attrs),
        help_text=field.help_text,
    )


class ChannelForm(forms.ModelForm):
    """A channel: the provider (an installed one), the number, and one input per setting and
    secret of every installed provider (`form_fields`); only the chosen provider's count."""

    # Set by the admin from `tenants.access`: only platform staff may point a channel at
    # another API host (`api_base_url`).
    may_set_platform_settings = True
    # Set by the admin to the user's id: a kept secret is only accepted from the same user.
    kept_secret_owner = ""

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
        self._inputs = {item.name: item for item in form_fields()}
        for name, item in self._inputs.items():  # a read-only page reads their labels
            self.fields[name] = _form_field(item)
        if "provider" not in self.fields:  # a read-only page (view permission) has no fields
            return
        self.fields["identifier"].required = False
        self.fields["provider"] = self._provider_field()
        settings = (self.instance.settings or {}) if self.instance.pk else {}
        stored = (self.instance.secrets or {}) if self.instance.pk else {}
        scope_id = "new" if self.instance._state.adding else str(self.instance.pk)
        mine = self.instance.provider if self.instance.pk else ""
        for name, item in self._inputs.items():
            field = self.fields[name]
            ours = not mine or mine in item.codes  # only the channel's own values show
            if item.field.secret:
                field.kept_scope = f"{self.kept_secret_owner}:{scope_id}:{self.prefix or ''}:{name}"
                if ours and stored.get(item.field.key):
                    field.widget.attrs["placeholder"] = "•••••• set; leave empty to keep"
            elif ours:
                self.initial.setdefault(name, str(settings.get(item.field.key) or ""))
            if item.field.platform_only and not self.may_set_platform_settings:
                field.disabled = True

    def _provider_field(self) -> forms.ChoiceField:
        """The installed providers; one not available here (the sandbox in production) is
        offered only to a channel that uses it already (channel_validate refuses it too)."""
        choices = [
            (code, provider.name or code)
            for code, provider in providers().items()
            if provider.available() or code == self.instance.provider
        ]
        if self._orphaned():
            code = self.instance.provider
            choices.append((code, f"{code} (not installed)"))
        field = forms.ChoiceField(
            label="Provider", choices=[("", "---------"), *choices], required=True
        )
        field.widget.attrs["data-channel-provider"] = ""
        return field

    def _orphaned(self) -> bool:
        """Whether this is a saved channel whose provider is no longer installed: it can be
        edited (deactivated, renamed) with its settings and secrets kept as they are."""
        code = self.instance.provider if self.instance.pk else ""
        return bool(code) and not self.instance._state.adding and code not in providers()

    def _keeps_orphaned_values(self) -> bool:
        return self._orphaned() and self._provider() == self.instance.provider

    # -- what the chosen provider uses ---------------------------------------------------------

    def _provider(self) -> str:
        return str(self.cleaned_data.get("provider") or "")

    def _chosen(self) -> list[FormField]:
        """The chosen provider's inputs ([] for no or an unknown provider)."""
        provider = self._provider()
        return [item for item in self._inputs.values() if provider and provider in item.codes]

    def _settings(self) -> dict[str, Any]:
        """The settings JSON, built from the chosen provider's fields (kept as stored for a
        provider that is no longer installed)."""
        if self._keeps_orphaned_values():
            return dict(self.instance.settings or {})
        return {
            item.field.key: self.cleaned_data[item.name]
            for item in self._chosen()
            if not item.field.secret and self.cleaned_data.get(item.name)
        }

    def _secrets(self) -> dict[str, str]:
        """Typed (or kept) secrets of the chosen provider; secrets the channel stores for
        another provider map to "" (removed on save). Nothing for a provider no longer
        installed (the stored ones are kept)."""
        if self._keeps_orphaned_values():
            return {}
        chosen = [item for item in self._chosen() if item.field.secret]
        secrets = {
            item.field.key: self.cleaned_data[item.name]
            for item in chosen
            if self.cleaned_data.get(item.name)
        }
        if self.instance.pk and not self.instance._state.adding:
            keys = {item.field.key for item in chosen}
            for name in self.instance.secrets or {}:
                if name not in keys:
                    secrets[name] = ""
        return secrets

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors and "provider" in self.errors:
            return cleaned
        provider = providers().get(self._provider())
        phone = cleaned.get("phone_number") or ""
        if not cleaned.get("identifier") and phone and provider is not None:
            cleaned["identifier"] = provider.identifier_for(
                phone_number=phone, settings=self._settings()
            )
        elif not cleaned.get("identifier") and self._keeps_orphaned_values():
            cleaned["identifier"] = self.instance.identifier
        stored = (self.instance.secrets or {}) if self.instance.pk else {}
        if provider is not None:
            self._add_provider_errors(provider, stored)
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
                provider=self._provider(),
                identifier=cleaned.get("identifier", ""),
                phone_number=phone,
                settings=settings,
                secrets={k: v for k, v in secrets.items() if v},
                exclude_pk=self.instance.pk if not self.instance._state.adding else None,
                current_provider=self.instance.provider if self._orphaned() else "",
            )
        except ValidationError as exc:
            self._add_service_errors(exc)
        return cleaned

    def _add_provider_errors(self, provider: Provider, stored: dict[str, Any]) -> None:
        """The provider's form rules (`Provider.form_errors`) on its inputs."""
        chosen = {item.field.key: item.name for item in self._chosen()}
        typed = {key: self.cleaned_data.get(name) or "" for key, name in chosen.items()}
        for key, message in provider.form_errors(typed=typed, stored=stored).items():
            name = chosen.get(key)
            if name is None:
                self.add_error(None, message)
            elif name not in self.errors:
                self.add_error(name, message)

    def _add_service_errors(self, exc: ValidationError) -> None:
        """The services' errors on the fields they are about (`settings` has no field here)."""
        chosen = {item.field.key: item.name for item in self._chosen()}
        for field, messages in exc.message_dict.items():
            if field == "settings":
                text = " ".join(messages)
                field = next((name for key, name in chosen.items() if key in text), field)
            self.add_error(field if field in self.fields else None, messages)

    def full_clean(self) -> None:
        """After a failed validation, carry each secret typed (or carried) this time to the
        next attempt as a sealed token; the secret itself is never rendered."""
        super().full_clean()
        if not self.is_bound or not self._errors:
            return
        for name in getattr(self, "_inputs", {}):
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
