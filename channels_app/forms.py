"""The channel form: secrets can be set (or replaced) but are never rendered back."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from channels_app.models import ChannelInstance
from channels_app.services import (
    channel_create,
    channel_platform_settings_changed,
    channel_update,
    channel_validate,
)

SECRET_FIELDS = ("account_sid", "auth_token", "access_token")


def _secret_input() -> forms.PasswordInput:
    return forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})


class ChannelForm(forms.ModelForm):
    # Set by the admin from `tenants.access`: only platform staff may point a channel at
    # another API host (`api_base_url`).
    may_set_platform_settings = True

    account_sid = forms.CharField(
        required=False, widget=_secret_input(), help_text="Twilio: leave empty to keep."
    )
    auth_token = forms.CharField(
        required=False, widget=_secret_input(), help_text="Twilio: leave empty to keep."
    )
    access_token = forms.CharField(
        required=False, widget=_secret_input(), help_text="Cloud API: leave empty to keep."
    )

    class Meta:
        model = ChannelInstance
        fields = ["provider", "identifier", "phone_number", "settings", "is_active"]
        help_texts = {
            "identifier": "whatsapp:<phone number>; filled in from the phone number when empty.",
            "settings": 'Cloud API: {"phone_number_id": "..."}. Never put secrets here.',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "identifier" in self.fields:  # a read-only page (view permission) has no fields
            self.fields["identifier"].required = False

    def _secrets(self) -> dict[str, str]:
        return {
            name: self.cleaned_data[name] for name in SECRET_FIELDS if self.cleaned_data.get(name)
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        if not cleaned.get("identifier") and cleaned.get("phone_number"):
            cleaned["identifier"] = f"whatsapp:{cleaned['phone_number']}"
        if not self.may_set_platform_settings:
            current = self.instance.settings if self.instance.pk else {}
            changed = channel_platform_settings_changed(
                settings=cleaned.get("settings"), current=current
            )
            if changed:
                self.add_error("settings", f"Only platform staff can set {', '.join(changed)}.")
                return cleaned
        secrets = dict(self.instance.secrets or {}) if self.instance.pk else {}
        secrets.update(self._secrets())
        try:
            channel_validate(
                provider=cleaned.get("provider", ""),
                identifier=cleaned.get("identifier", ""),
                phone_number=cleaned.get("phone_number", ""),
                settings=cleaned.get("settings") or {},
                secrets=secrets,
                exclude_pk=self.instance.pk if not self.instance._state.adding else None,
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        return cleaned

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
                    settings=data.get("settings") or {},
                    secrets=self._secrets(),
                    is_active=data.get("is_active", True),
                )
            return channel_update(
                channel=self.instance,
                data={
                    "provider": data["provider"],
                    "identifier": data.get("identifier", ""),
                    "phone_number": data["phone_number"],
                    "settings": data.get("settings") or {},
                    "secrets": self._secrets(),
                    "is_active": data.get("is_active", True),
                },
            )
        except ValidationError as exc:  # lost a race with another save since clean()
            self._update_errors(exc)
            raise
