"""Writes for tenant members: invitations, accepting them, changing a role, removing.

Who may call the owner-side functions is decided by `tenants.access` (owners of the tenant and
platform staff); these functions keep the data's own rules:

- Membership comes only from accepting an invitation (or from platform staff in the shell).
  An invitation is a one-time link, shown once to the inviter to pass on; whoever opens it
  accepts with their own account, logging in or creating one. Nothing here looks an account up
  by email or creates one for somebody else, so an owner can neither learn who has an account
  nor attach, pre-create or take over anyone's login.
- A user has at most one live membership per tenant.
- A tenant that has owners keeps at least one: the last owner can be neither demoted nor
  removed. Both checks run under a lock on the tenant row, on the stored role.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from tenants.models import InvitationStatus, Role, Tenant, TenantInvitation, TenantMembership

INVITATION_DAYS = 7


def _token_hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def invitation_url(*, raw_token: str) -> str:
    """The link to pass on: where the invitation is accepted."""
    path = reverse("invitation-accept", kwargs={"token": raw_token})
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def _validate_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError({"role": f"Must be one of: {', '.join(Role.values)}."})


def invitation_create(
    *, tenant: Tenant, email: str, role: str, invited_by: Any = None
) -> tuple[TenantInvitation, str]:
    """A pending invitation to `tenant` with `role`, valid for INVITATION_DAYS, and its raw
    token (shown once: only its hash is kept). `email` only says who it is meant for."""
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    _validate_role(role)
    raw_token = secrets.token_urlsafe(32)
    invitation = TenantInvitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        invited_by=invited_by if getattr(invited_by, "pk", None) else None,
        token_hash=_token_hash(raw_token),
        expires_at=timezone.now() + timedelta(days=INVITATION_DAYS),
    )
    return invitation, raw_token


def invitation_find(*, raw_token: str) -> TenantInvitation | None:
    """The pending, unexpired invitation behind a link, to a live switched-on tenant."""
    if not raw_token or len(raw_token) > 200:
        return None
    invitation = (
        TenantInvitation.objects.select_related("tenant")
        .filter(token_hash=_token_hash(raw_token), tenant__is_active=True)
        .filter(tenant__deleted_at__isnull=True)
        .first()
    )
    if invitation is None or invitation.status != InvitationStatus.PENDING:
        return None
    return invitation


class InvitationUnusable(Exception):
    """The invitation was accepted, revoked or expired meanwhile."""


@transaction.atomic
def invitation_accept(*, invitation: TenantInvitation, user: Any) -> TenantMembership:
    """Make `user` a member of the invitation's tenant with its role, once.

    A user who already is a member keeps their membership and role (the invitation is used up
    all the same). Raises InvitationUnusable when the invitation is no longer pending."""
    locked = TenantInvitation.objects.select_for_update().filter(pk=invitation.pk).first()
    if locked is None or locked.status != InvitationStatus.PENDING:
        raise InvitationUnusable
    existing = TenantMembership.objects.filter(tenant_id=locked.tenant_id, user=user).first()
    if existing is not None:
        membership = existing
    else:
        try:
            with transaction.atomic():
                membership = TenantMembership.objects.create(
                    tenant_id=locked.tenant_id,
                    user=user,
                    role=locked.role,
                    invited_by_id=locked.invited_by_id,
                )
        except IntegrityError:  # the same user accepting two invitations at once
            membership = TenantMembership.objects.get(tenant_id=locked.tenant_id, user=user)
    locked.accepted_at = timezone.now()
    locked.accepted_by = user
    locked.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    return membership


def invitation_revoke(*, invitation: TenantInvitation) -> None:
    """Void a pending invitation (idempotent; an accepted one stays accepted)."""
    TenantInvitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now(), updated_at=timezone.now())


def _locked(membership: TenantMembership) -> TenantMembership:
    """The membership as stored, with its tenant row locked: two owners changing each other
    at once are serialised, and each decision sees the other's result."""
    list(Tenant.all_objects.select_for_update().filter(pk=membership.tenant_id).values("pk"))
    current = TenantMembership.objects.filter(pk=membership.pk).first()
    if current is None:
        raise ValidationError({"member": "This member was removed meanwhile."})
    return current


def _has_other_owner(membership: TenantMembership) -> bool:
    return (
        TenantMembership.objects.filter(tenant_id=membership.tenant_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


def member_is_last_owner(*, membership: TenantMembership) -> bool:
    """For pages that must say so before anyone tries (not a lock: the services decide)."""
    return membership.role == Role.OWNER and not _has_other_owner(membership)


@transaction.atomic
def member_update(*, membership: TenantMembership, role: str) -> TenantMembership:
    """Change a member's role; the tenant's last owner keeps the role."""
    _validate_role(role)
    current = _locked(membership)
    if current.role == Role.OWNER and role != Role.OWNER and not _has_other_owner(current):
        raise ValidationError({"role": "The last owner of a tenant cannot be demoted."})
    if current.role != role:
        current.role = role
        current.save(update_fields=["role", "updated_at"])
    membership.role = current.role
    return current


@transaction.atomic
def member_remove(*, membership: TenantMembership) -> None:
    """Remove a member (soft delete); the tenant's last owner stays."""
    current = _locked(membership)
    if current.role == Role.OWNER and not _has_other_owner(current):
        raise ValidationError({"role": "The last owner of a tenant cannot be removed."})
    current.soft_delete()
