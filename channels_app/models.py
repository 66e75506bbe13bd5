from django.db import models
from django.db.models import Q

from core.fields import EncryptedJSONField
from core.models import BaseModel


class ChannelType(models.TextChoices):
    WHATSAPP = "whatsapp", "WhatsApp"
    INSTAGRAM = "instagram", "Instagram (reserved)"


class Provider(models.TextChoices):
    TWILIO = "twilio", "Twilio"
    CLOUD_API = "cloud_api", "WhatsApp Cloud API"
    SANDBOX = "sandbox", "Sandbox (demo: nothing is sent)"


_PROVIDER_SHORT = {
    Provider.TWILIO: "Twilio",
    Provider.CLOUD_API: "Cloud API",
    Provider.SANDBOX: "Sandbox",
}


class ChannelInstance(BaseModel):
    """A tenant's WhatsApp number at one provider.

    `settings` holds non-secret provider settings (Cloud API `phone_number_id`, `api_base_url`);
    `secrets` is encrypted (Twilio `account_sid`/`auth_token`, Cloud API `access_token`/
    `app_secret`) and is never shown back. `phone_number_id` mirrors `settings.phone_number_id`
    for the webhook lookup.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="channels")
    channel_type = models.CharField(
        max_length=20, choices=ChannelType.choices, default=ChannelType.WHATSAPP
    )
    provider = models.CharField(max_length=20, choices=Provider.choices)
    identifier = models.CharField(max_length=100, help_text="e.g. whatsapp:+14155238886")
    phone_number = models.CharField(max_length=20, help_text="E.164, e.g. +14155238886")
    settings = models.JSONField(default=dict, blank=True)
    secrets = EncryptedJSONField()
    phone_number_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["identifier"]
        verbose_name = "channel"
        constraints = [
            models.UniqueConstraint(
                fields=["identifier"],
                condition=Q(deleted_at__isnull=True),
                name="channel_identifier_live_uniq",
            )
        ]
        indexes = [models.Index(fields=["phone_number_id"], name="channel_phone_number_id_idx")]

    def __str__(self) -> str:
        """`Acme · WhatsApp +1555…0001 (Twilio)`. The tenant's name only when the tenant is
        loaded already (`select_related`): a list of channels never costs a query per row."""
        number = self.phone_number or self.identifier.removeprefix("whatsapp:")
        if len(number) > 9:
            number = f"{number[:5]}…{number[-4:]}"
        kind = "WhatsApp" if self.channel_type == ChannelType.WHATSAPP else self.channel_type
        provider = _PROVIDER_SHORT.get(self.provider, self.provider)
        label = f"{kind} {number} ({provider})"
        if ChannelInstance.tenant.is_cached(self):
            return f"{self.tenant.name} · {label}"
        return label

    def save(self, *args: object, **kwargs: object) -> None:
        self.phone_number_id = str((self.settings or {}).get("phone_number_id", "") or "")
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "settings" in update_fields:  # type: ignore[operator]
            kwargs["update_fields"] = {*update_fields, "phone_number_id"}  # type: ignore[misc]
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def has_secrets(self) -> bool:
        return bool(self.secrets)
