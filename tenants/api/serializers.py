"""Bodies of the tenant, API key and staff login endpoints (see the contract's Bodies)."""

import re
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from core.api_fields import (
    StrictBooleanField,
    StrictCharField,
    StrictEmailField,
    StrictModelSerializer,
)
from tenants.models import (
    InvitationStatus,
    Role,
    Tenant,
    TenantAPIKey,
    TenantInvitation,
    TenantMembership,
    TenantProjectConfig,
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# The same rule in the schema (`pattern`); an empty owner phone is allowed (blank skips it).
E164_VALIDATOR = RegexValidator(E164, message="Must be an E.164 number such as +5511988887777.")


# What `django.utils.text.slugify` leaves as it is (the service's rule), as a schema pattern.
SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9]+(?:(?:_+-?|-)_*[a-z0-9]+)*$",
    message="Use lowercase letters, numbers and hyphens.",
)


class ProjectConfigSerializer(StrictModelSerializer):
    class Meta:
        model = TenantProjectConfig
        fields = ["business_description", "target_audience", "communication_style", "language"]
        extra_kwargs = {name: {"required": False} for name in fields}


class KeywordListField(serializers.ListField):
    child = StrictCharField(max_length=50, allow_blank=False)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 50)
        super().__init__(**kwargs)


class TenantSerializer(StrictModelSerializer):
    """Writes go through `tenants.services.tenant_create` / `tenant_update` in the view."""

    slug = StrictCharField(
        max_length=80,
        required=False,
        trim_whitespace=False,
        validators=[SLUG_VALIDATOR],
        help_text="Lowercase letters, digits, hyphens and underscores; derived from the name "
        "when left out.",
    )
    owner_name = StrictCharField(max_length=200, required=False, allow_blank=True)
    owner_email = StrictEmailField(required=False, allow_blank=True)
    owner_phone = StrictCharField(
        max_length=20,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        validators=[E164_VALIDATOR],
        help_text="E.164, e.g. +5511988887777 (or empty).",
    )
    config = ProjectConfigSerializer(required=False)
    opt_out_keywords = KeywordListField()
    opt_in_keywords = KeywordListField()

    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "slug",
            "owner_name",
            "owner_email",
            "owner_phone",
            "config",
            "opt_out_keywords",
            "opt_in_keywords",
            "is_active",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"is_active": {"required": False}}


class APIKeySerializer(StrictModelSerializer):
    class Meta:
        model = TenantAPIKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class APIKeyCreatedSerializer(APIKeySerializer):
    key = StrictCharField(read_only=True, help_text="The key itself, shown only in this answer.")

    class Meta(APIKeySerializer.Meta):
        fields = ["id", "name", "prefix", "key", "created_at"]


class LoginSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=512, trim_whitespace=False, write_only=True)


class UserMembershipSerializer(serializers.Serializer):
    tenant = serializers.UUIDField()
    tenant_name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class StaffUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = StrictCharField()
    email = StrictCharField()
    is_staff = StrictBooleanField()
    is_superuser = StrictBooleanField()
    is_platform_staff = StrictBooleanField(
        help_text="Sees and manages every tenant (superusers and the Platform staff group)."
    )
    memberships = UserMembershipSerializer(
        many=True, help_text="The tenants this user is a member of, with the role in each."
    )


class MemberUserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    name = serializers.CharField(source="get_full_name", read_only=True)


class MemberSerializer(serializers.ModelSerializer):
    user = MemberUserSerializer(read_only=True)

    class Meta:
        model = TenantMembership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = fields


class InvitationSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=InvitationStatus.choices, read_only=True)

    class Meta:
        model = TenantInvitation
        fields = ["id", "email", "role", "status", "expires_at", "accepted_at", "created_at"]
        read_only_fields = fields


class InvitationCreatedSerializer(InvitationSerializer):
    invite_url = serializers.CharField(
        read_only=True,
        help_text="The one-time link to pass on, shown only in this answer. Whoever opens it "
        "joins with their own account (logging in, or creating one).",
    )

    class Meta(InvitationSerializer.Meta):
        fields = ["id", "email", "role", "status", "invite_url", "expires_at", "created_at"]
        read_only_fields = fields


class InvitationCreateSerializer(serializers.Serializer):
    email = StrictEmailField(max_length=254, help_text="Who the invitation is for.")
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class LoginResultSerializer(serializers.Serializer):
    user = StaffUserSerializer()
    csrf_token = StrictCharField(
        help_text="Send it back as the X-CSRFToken header on unsafe requests (also a cookie)."
    )
    session_expires_at = serializers.DateTimeField()
