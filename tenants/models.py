from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import EncryptedTextField
from core.models import BaseModel

DEFAULT_OPT_OUT_KEYWORDS = ["stop", "unsubscribe", "parar", "sair", "cancelar", "baja"]
DEFAULT_OPT_IN_KEYWORDS = ["start", "subscribe", "voltar"]


def default_opt_out_keywords() -> list[str]:
    return list(DEFAULT_OPT_OUT_KEYWORDS)


def default_opt_in_keywords() -> list[str]:
    return list(DEFAULT_OPT_IN_KEYWORDS)


class Tenant(BaseModel):
    """A business using chatai. Owner contact details are PII and encrypted at rest."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)
    owner_name = EncryptedTextField(blank=True, default="")
    owner_email = EncryptedTextField(blank=True, default="")
    owner_phone = EncryptedTextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    opt_out_keywords = models.JSONField(default=default_opt_out_keywords, blank=True)
    opt_in_keywords = models.JSONField(default=default_opt_in_keywords, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("platform_staff", "Platform staff: sees and manages every tenant"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["slug"], condition=Q(deleted_at__isnull=True), name="tenant_slug_live_uniq"
            )
        ]

    def __str__(self) -> str:
        return self.name


class TenantProjectConfig(BaseModel):
    """How the tenant's AI answers: who the business is, for whom, and in which voice."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="config")
    business_description = models.TextField(blank=True, default="")
    target_audience = models.TextField(blank=True, default="")
    communication_style = models.TextField(blank=True, default="")
    language = models.CharField(max_length=35, default="en")

    class Meta:
        verbose_name = "project config"

    def __str__(self) -> str:
        """`AI config of Acme` (the tenant's name only when the tenant is loaded already, as
        on its tenant's page)."""
        if TenantProjectConfig.tenant.is_cached(self):
            return f"AI config of {self.tenant.name}"
        return "AI config"


class TenantAPIKey(BaseModel):
    """A tenant-scoped API key. Only its SHA-256 is stored; the key is shown once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64, unique=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        """`Acme · CRM sync (chk_1a2b3c4d…)`, `· revoked` once revoked. The tenant's name only
        when the tenant is loaded already: never a query of its own."""
        label = f"{self.name} ({self.prefix}…)"
        if TenantAPIKey.tenant.is_cached(self):
            label = f"{self.tenant.name} · {label}"
        return f"{label} · revoked" if self.revoked_at else label

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.deleted_at is None


class Role(models.TextChoices):
    """What a member may do in a tenant (see `tenants.access` for the full table)."""

    OWNER = "owner", "Owner"
    AGENT = "agent", "Agent"
    VIEWER = "viewer", "Viewer"


class TenantMembership(BaseModel):
    """A user's place in a tenant: the role decides what they may see and do there.

    Removing a member soft-deletes the row (the history stays); a user has at most one live
    membership per tenant.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["tenant", "role", "created_at"]
        verbose_name = "member"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "user"],
                condition=Q(deleted_at__isnull=True),
                name="membership_tenant_user_live_uniq",
            )
        ]
        indexes = [models.Index(fields=["user", "tenant"], name="membership_user_tenant_idx")]

    def __str__(self) -> str:
        """`alice, agent at Acme` (the tenant's name only when the tenant is loaded already;
        the admin loads the user and the tenant with the membership)."""
        label = f"{self.user}, {self.get_role_display().lower()}"
        if TenantMembership.tenant.is_cached(self):
            return f"{label} at {self.tenant.name}"
        return label


class InvitationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Withdrawn"
    EXPIRED = "expired", "Expired"


class TenantInvitation(BaseModel):
    """An invitation to join a tenant with a role, accepted through a one-time link.

    Only the SHA-256 of the link's token is stored; the link is shown once, to the inviter, to
    pass on. Whoever opens it accepts with their own account (logging in, or creating one with
    a username and password of their choice): an invitation never creates, finds or changes an
    account by its email, so nobody can be added to a tenant, or have an account made for them,
    without holding the link. The email is a label for the owners (encrypted at rest).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = EncryptedTextField()
    role = models.CharField(max_length=16, choices=Role.choices)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "invitation"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="invitation_tenant_idx")]

    def __str__(self) -> str:
        return f"Invitation to {self.tenant} ({self.get_role_display().lower()})"

    @property
    def status(self) -> InvitationStatus:
        if self.accepted_at:
            return InvitationStatus.ACCEPTED
        if self.revoked_at:
            return InvitationStatus.REVOKED
        if self.expires_at <= timezone.now():
            return InvitationStatus.EXPIRED
        return InvitationStatus.PENDING
