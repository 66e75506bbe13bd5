"""Bodies of the tenant, API key and staff login endpoints (see the contract's Bodies)."""

import re
from typing import Any

from rest_framework import serializers

from tenants.models import (
    Role,
    Tenant,
    TenantAPIKey,
    TenantInvitation,
    TenantMembership,
    TenantProjectConfig,
)

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class ProjectConfigSerializer(serializers.ModelSerializer):
    class Meta:
        model = TenantProjectConfig
        fields = ["business_description", "target_audience", "communication_style", "language"]
        extra_kwargs = {name: {"required": False} for name in fields}


class KeywordListField(serializers.ListField):
    child = serializers.CharField(max_length=50, allow_blank=False)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 50)
        super().__init__(**kwargs)


class TenantSerializer(serializers.ModelSerializer):
    """Writes go through `tenants.services.tenant_create` / `tenant_update` in the view."""

    slug = serializers.SlugField(max_length=80, required=False)
    owner_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    owner_email = serializers.EmailField(required=False, allow_blank=True)
    owner_phone = serializers.CharField(max_length=20, required=False, allow_blank=True)
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

    def validate_owner_phone(self, value: str) -> str:
        if value and not E164.match(value):
            raise serializers.ValidationError("Must be an E.164 number such as +5511988887777.")
        return value


class APIKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = TenantAPIKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]


class APIKeyCreatedSerializer(APIKeySerializer):
    key = serializers.CharField(
        read_only=True, help_text="The key itself, shown only in this answer."
    )

    class Meta(APIKeySerializer.Meta):
        fields = ["id", "name", "prefix", "key", "created_at"]


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=512, trim_whitespace=False, write_only=True)


class UserMembershipSerializer(serializers.Serializer):
    tenant = serializers.UUIDField()
    tenant_name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class StaffUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_staff = serializers.BooleanField()
    is_superuser = serializers.BooleanField()
    is_platform_staff = serializers.BooleanField(
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
    status = serializers.ChoiceField(
        choices=["pending", "accepted", "revoked", "expired"], read_only=True
    )

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
    email = serializers.EmailField(max_length=254, help_text="Who the invitation is for.")
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class LoginResultSerializer(serializers.Serializer):
    user = StaffUserSerializer()
    csrf_token = serializers.CharField(
        help_text="Send it back as the X-CSRFToken header on unsafe requests (also a cookie)."
    )
    session_expires_at = serializers.DateTimeField()
