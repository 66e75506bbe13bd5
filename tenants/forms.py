from django import forms

from tenants.models import (
    Tenant,
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
