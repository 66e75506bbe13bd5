from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_platform_staff_group(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    """The "Platform staff" group holds `tenants.platform_staff` (see `tenants.access`).

    Created after migrations (permissions exist only then); idempotent."""
    from django.contrib.auth.models import Group, Permission

    from tenants.access import PLATFORM_STAFF_GROUP

    permission = Permission.objects.using(using).filter(
        content_type__app_label="tenants", codename="platform_staff"
    )
    if not permission.exists():
        return
    group, _ = Group.objects.using(using).get_or_create(name=PLATFORM_STAFF_GROUP)
    group.permissions.add(*permission)


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        post_migrate.connect(_ensure_platform_staff_group, sender=self)
