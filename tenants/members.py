"""Writes for tenant members: invite, change a role, remove.

Who may call them is decided by `tenants.access` (owners of the tenant and platform staff);
these functions keep the data's own rules:

- a user has at most one live membership per tenant;
- a tenant that has owners keeps at least one: the last owner can be neither demoted nor
  removed (another owner, or platform staff, must be named first);
- an invitation creates the user when the email is new, with no usable password, and returns a
  one-time link to choose one. It is shown once, to the inviter, to pass on (like an API key):
  an existing account is never given a link, so inviting cannot take over anyone's login.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tenants.models import Role, Tenant, TenantMembership


@dataclass(frozen=True)
class Invitation:
    membership: TenantMembership
    invite_url: str | None  # only for a user created by this invitation


def member_invite_url(*, user: Any) -> str:
    """A one-time link where the user chooses a password (Django's password reset token:
    valid for PASSWORD_RESET_TIMEOUT, void once a password is set or the user logs in)."""
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def _find_or_create_user(*, email: str, name: str) -> tuple[Any, bool]:
    User = get_user_model()
    matches = list(User.objects.filter(email__iexact=email)[:2])
    if len(matches) > 1:
        raise ValidationError(
            {"email": "More than one account has this email; ask platform staff to add them."}
        )
    if matches:
        return matches[0], False
    username = email.lower()
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError(
            {"email": "An account with this username exists; ask platform staff to add them."}
        )
    first, _, last = name.strip().partition(" ")
    user = User(username=username, email=email, first_name=first[:150], last_name=last[:150])
    user.set_unusable_password()
    user.save()
    return user, True


@transaction.atomic
def member_invite(
    *, tenant: Tenant, email: str, role: str, invited_by: Any = None, name: str = ""
) -> Invitation:
    """Add the person with this email to the tenant with `role`, creating their account when
    the email is new. Raises ValidationError for a bad email or role, or when they already are
    a member."""
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    if role not in Role.values:
        raise ValidationError({"role": f"Must be one of: {', '.join(Role.values)}."})
    user, created = _find_or_create_user(email=email, name=name)
    if TenantMembership.objects.filter(tenant=tenant, user=user).exists():
        raise ValidationError({"email": "This person is already a member of the tenant."})
    try:
        with transaction.atomic():
            membership = TenantMembership.objects.create(
                tenant=tenant,
                user=user,
                role=role,
                invited_by=invited_by if getattr(invited_by, "pk", None) else None,
            )
    except IntegrityError:  # the same invitation, concurrently
        raise ValidationError({"email": "This person is already a member of the tenant."}) from None
    return Invitation(membership, member_invite_url(user=user) if created else None)


def _other_owners(membership: TenantMembership) -> bool:
    """Whether the tenant has another owner. Locks the tenant row first, so two owners
    demoting each other at once are serialised and one of them stays."""
    list(Tenant.all_objects.select_for_update().filter(pk=membership.tenant_id).values("pk"))
    return (
        TenantMembership.objects.filter(tenant_id=membership.tenant_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def member_update(*, membership: TenantMembership, role: str) -> TenantMembership:
    """Change a member's role; the tenant's last owner keeps the role."""
    if role not in Role.values:
        raise ValidationError({"role": f"Must be one of: {', '.join(Role.values)}."})
    if membership.role == Role.OWNER and role != Role.OWNER and not _other_owners(membership):
        raise ValidationError({"role": "The last owner of a tenant cannot be demoted."})
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])
    return membership


@transaction.atomic
def member_remove(*, membership: TenantMembership) -> None:
    """Remove a member (soft delete); the tenant's last owner stays."""
    if membership.role == Role.OWNER and not _other_owners(membership):
        raise ValidationError({"role": "The last owner of a tenant cannot be removed."})
    membership.soft_delete()
