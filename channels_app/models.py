from django.db import models
from django.db.models import Q

from core.fields import EncryptedJSONField
from core.models import BaseModel


class ChannelType(models.TextChoices):
    WHATSAPP = "whatsapp", "WhatsApp"
    INSTAGRAM = "instagram", "Instagram"


class Provider:
    """The codes of the built-in providers, for code that names one of them. Which providers
    exist is `settings.CHANNEL_PROVIDERS` (see `channels_app.providers.registry`): the
    column has no choices, so installing a provider needs no migration."""

    TWILIO = "twilio"
    CLOUD_API = "cloud_api"
    SANDBOX = "sandbox"
    INSTAGRAM = "instagram"


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
    provider = models.CharField(
        max_length=20, help_text="The code of an installed provider (CHANNEL_PROVIDERS)."
    )
    identifier = models.CharField(max_length=100, help_text="e.g. whatsapp:+14155238886")
    phone_number = models.CharField(
        max_length=20,
        blank=True,
        help_text="E.164, e.g. +14155238886 (empty for an Instagram account)",
    )
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
        number = self.phone_number or self.identifier.partition(":")[2] or self.identifier
        from channels_app.providers.registry import provider_label

        if len(number) > 9:
            number = f"{number[:5]}…{number[-4:]}"
        kind = (
            ChannelType(self.channel_type).label if self.channel_type in ChannelType.values else ""
        )
        provider = provider_label(self.provider)
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

    def get_provider_display(self) -> str:
        """The provider's name as the admin shows it (its code when it is not installed)."""
        from channels_app.providers.registry import providers

        provider = providers().get(self.provider)
        return (provider.name or self.provider) if provider is not None else self.provider

    @property
    def has_secrets(self) -> bool:
        return bool(self.secrets)


class TemplateStatus:
    """The statuses of a template as stored (the provider's, lower-cased). Only `approved`
    templates can be sent; `unsupported` is ours: approved by the provider, but it needs send
    parameters we cannot give (a media header, a URL button with a variable, …; the reason
    in `rejection_reason`)."""

    APPROVED = "approved"
    UNSUPPORTED = "unsupported"


class ChannelTemplate(BaseModel):
    """A message template the provider knows for a channel's number, as last synced
    (`channels_app.templates.channel_templates_sync`).

    Cloud API templates are identified by `name` + `language` and carry their `components`
    as Meta lists them; Twilio Content templates by `content_sid`, with `components` holding
    the Content resource's `types`. `parameters` lists the placeholders a send must fill, in
    order: `[{"component": "header"|"body", "name": "1"}]` (Cloud API; `named` when the
    template uses named parameters) or `[{"name": "1", "default": "…"}]` (Twilio variables).
    `body` is the text with its placeholders (`{{1}}`), used to show what was sent.
    `gone_at` is set when a sync no longer finds the template at the provider.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="channel_templates"
    )
    channel = models.ForeignKey(ChannelInstance, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=512)
    language = models.CharField(max_length=20, blank=True, default="")
    category = models.CharField(max_length=40, blank=True, default="")
    status = models.CharField(max_length=40, blank=True, default="")
    content_sid = models.CharField(max_length=34, blank=True, default="")
    provider_template_id = models.CharField(max_length=64, blank=True, default="")
    body = models.TextField(blank=True, default="")
    components = models.JSONField(default=list, blank=True)
    parameters = models.JSONField(default=list, blank=True)
    named = models.BooleanField(default=False)
    rejection_reason = models.CharField(max_length=500, blank=True, default="")
    synced_at = models.DateTimeField()
    gone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "language"]
        verbose_name = "message template"
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "name", "language"],
                condition=Q(content_sid=""),
                name="template_channel_name_language_uniq",
            ),
            models.UniqueConstraint(
                fields=["channel", "content_sid"],
                condition=~Q(content_sid=""),
                name="template_channel_content_sid_uniq",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})" if self.language else self.name

    @property
    def sendable(self) -> bool:
        return self.status == TemplateStatus.APPROVED and self.gone_at is None
