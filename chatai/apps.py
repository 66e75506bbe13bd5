from django.contrib.admin.apps import AdminConfig


class ChataiAdminConfig(AdminConfig):
    """The Django admin with chatai's site: members and platform staff, roles from
    `tenants.access` (see `tenants.admin_base.ChataiAdminSite`)."""

    default_site = "tenants.admin_base.ChataiAdminSite"
