from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from tenants.members import member_update
from tenants.models import (
    Tenant,
    TenantAPIKey,
    TenantInvitation,
    TenantMembership,
    TenantProjectConfig,
    default_opt_in_keywords,
    default_opt_out_keywords,
)


class KeywordListField(forms.CharField):
    """A comma-separated list of keywords edited as text, stored as a JSON list."""

    def prepare_value(self, value: object) -> object:
        if isinstance(value, list):
            return ", ".join(value)
        return value

    def to_python(self, value: object) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [part.strip().lower() for part in text.split(",") if part.strip()]


class TenantAdminForm(forms.ModelForm):
    owner_name = forms.CharField(required=False, max_length=200)
    owner_email = forms.EmailField(required=False)
    owner_phone = forms.RegexField(
        required=False,
        regex=r"^\+[1-9]\d{6,14}$",
        error_messages={"invalid": "Use E.164, e.g. +5511988887777."},
    )
    opt_out_keywords = KeywordListField(
        required=False,
        initial=default_opt_out_keywords,
        help_text="Comma-separated; a whole message equal to one opts out.",
    )
    opt_in_keywords = KeywordListField(
        required=False,
        initial=default_opt_in_keywords,
        help_text="Comma-separated; a whole message equal to one opts back in.",
    )

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "is_active",
            "owner_name",
            "owner_email",
            "owner_phone",
            "opt_out_keywords",
            "opt_in_keywords",
        ]


class TenantProjectConfigForm(forms.ModelForm):
    class Meta:
        model = TenantProjectConfig
        fields = ["business_description", "target_audience", "communication_style", "language"]


class InvitationForm(forms.ModelForm):
    """Invite someone to a tenant: the email says who it is for; the link does the rest."""

    email = forms.EmailField(
        max_length=254, help_text="Who it is for. They join with the link shown after saving."
    )

    class Meta:
        model = TenantInvitation
        fields = ["tenant", "email", "role"]


class APIKeyCreateForm(forms.ModelForm):
    """A new API key: its tenant and a name saying what uses it. The key itself is made by
    `api_key_create` and shown once, after saving."""

    class Meta:
        model = TenantAPIKey
        fields = ["tenant", "name"]
        help_texts = {"name": "What uses this key, e.g. “CRM sync”. The key is shown once."}


class MemberChangeForm(forms.ModelForm):
    """Change a member's role through `member_update` (in `clean`, before the form touches
    the instance, so the last-owner rule sees the stored role)."""

    class Meta:
        model = TenantMembership
        fields = ["role"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            member_update(membership=self.instance, role=cleaned["role"])
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return cleaned
