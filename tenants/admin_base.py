"""The admin's side of `tenants.access`: one site, one mixin, the same answers as the API.

- `ChataiAdminSite` lets in platform staff and tenant members (`access.has_any_access`), with or
  without `is_staff`; a user who sees no tenant cannot log in.
- Its first page is the dashboard (`conversations.admin_dashboard`). Its nav sidebar is
  ordered for the job: the inbox with the number of conversations waiting for a human first,
  then conversations, flows, channels, tenants, and the accounts and lockout tables under one
  "Security" heading last.
- `TenantScopedAdmin` (and `TenantScopedInline`) narrow every changelist to the tenants the user
  sees, answer 404 for an object of another tenant (exactly as for an id that does not exist),
  and take each permission from the user's role in the object's tenant: a role without the
  action gets the read-only page, or 403 for a write.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest
from django.urls import path, reverse

from tenants import access
from tenants.access import Action


class ChataiAuthenticationForm(AdminAuthenticationForm):
    """The admin login: platform staff and tenant members; anyone else is refused with the
    same message as a wrong password."""

    def confirm_login_allowed(self, user: Any) -> None:
        if not user.is_active or not access.has_any_access(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class PlatformOnlyAdmin:
    """For pages that belong to no tenant (Django's accounts and groups, the lockout records):
    platform staff holding Django's own permission for them. Members never see them, even with
    a permission left over from before memberships."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.is_platform_staff(request.user) and super().has_module_permission(request)  # type: ignore[misc]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_platform_staff(request.user) and super().has_view_permission(  # type: ignore[misc]
            request, obj
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_platform_staff(request.user) and super().has_change_permission(  # type: ignore[misc]
            request, obj
        )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return access.is_platform_staff(request.user) and super().has_add_permission(  # type: ignore[misc]
            request, *args
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_platform_staff(request.user) and super().has_delete_permission(  # type: ignore[misc]
            request, obj
        )


# The index's sections: (heading, css name, the models in their order). A model of one of our
# apps that is not named here joins the end of its app's section; a model of any other app
# (Django's accounts, django-axes, a library added later) joins "Security".
SECTIONS: list[tuple[str, str, list[str]]] = [
    ("Conversations", "conversations", ["chatthread", "contact", "message", "messageattachment"]),
    ("Flows", "flows", ["flow", "flowsession"]),
    ("Channels", "channels", ["channelinstance"]),
    ("Integrations", "integrations", ["webhookendpoint", "webhookdelivery"]),
    (
        "Tenants",
        "tenants",
        ["tenant", "tenantmembership", "tenantinvitation", "tenantapikey"],
    ),
    ("Security", "security", ["user", "group"]),
]
_SECTION_OF_APP = {
    "conversations": "Conversations",
    "flows": "Flows",
    "channels_app": "Channels",
    "integrations": "Integrations",
    "tenants": "Tenants",
}
_WAITING_ATTR = "_chatai_waiting_count"


def inbox_url() -> str:
    """The staff inbox (`conversations.admin_inbox`), on the conversations waiting for a
    human."""
    return reverse("admin:inbox") + "?needs_human=1"


def waiting_count(request: HttpRequest) -> int:
    """Open conversations waiting for a human in the tenants the user sees: one COUNT query,
    remembered for the request (the index and its sidebar both ask)."""
    count = getattr(request, _WAITING_ATTR, None)
    if count is None:
        from conversations.models import ChatThread, ThreadStatus

        waiting = ChatThread.objects.filter(needs_human=True, status=ThreadStatus.OPEN)
        count = access.scope(waiting, request.user).count()
        setattr(request, _WAITING_ATTR, count)
    return count


class ChataiAdminSite(admin.AdminSite):
    site_header = "chatai staff"
    site_title = "chatai"
    index_title = "Dashboard"
    login_form = ChataiAuthenticationForm

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[tuple[str, Any, str]] = []

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict]:
        """The index and the sidebar, ordered for the job (see `SECTIONS`); an app's own page
        (`app_label`) keeps Django's list of that app."""
        if app_label is not None:
            return super().get_app_list(request, app_label)
        app_dict = self._build_app_dict(request)
        if not app_dict:
            return []
        placed: dict[str, list[dict]] = {name: [] for name, _, _ in SECTIONS}
        order = {name: models for name, _, models in SECTIONS}
        for label, app in app_dict.items():
            section = _SECTION_OF_APP.get(label, "Security")
            placed[section].extend(app["models"])
            for model in app["models"]:
                # A model admin may say the model needs attention (`app_list_notice`).
                notice = getattr(self._registry.get(model["model"]), "app_list_notice", None)
                model["notice"] = notice(request) if notice else ""
        sections = [self._inbox_section(request)]
        for name, css, _ in SECTIONS:
            models = placed[name]
            if not models:
                continue
            rank = {model_name: i for i, model_name in enumerate(order[name])}
            models.sort(key=lambda m: (rank.get(m["model"]._meta.model_name, len(rank)), m["name"]))
            sections.append({"name": name, "app_label": css, "app_url": None, "models": models})
        return sections

    def _inbox_section(self, request: HttpRequest) -> dict:
        return {
            "name": "Inbox",
            "app_label": "inbox",
            "app_url": None,
            "models": [
                {
                    "name": "Waiting for a human",
                    "object_name": "inbox",
                    "admin_url": inbox_url(),
                    "add_url": None,
                    "view_only": True,
                    "link_only": True,
                    "badge": waiting_count(request),
                    "perms": {"view": True},
                }
            ],
        }

    def has_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and access.has_any_access(request.user))

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        """The first page is the dashboard (`conversations.admin_dashboard`); the sections
        above are its sidebar."""
        from conversations.admin_dashboard import dashboard_view  # conversations imports us

        return dashboard_view(request, admin_site=self, extra_context=extra_context)

    def add_page(self, route: str, view: Any, name: str) -> None:
        """A page of the site that belongs to no one model (the inbox): served behind the
        admin's login like every admin page; the view checks the user's role itself."""
        self._pages.append((route, view, name))

    def pages(self) -> list[tuple[str, Any, str]]:
        return list(self._pages)

    def get_urls(self) -> list:
        own = [path(route, self.admin_view(view), name=name) for route, view, name in self._pages]
        return own + super().get_urls()

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        """Every model admin answers through `tenants.access`: ours scope by tenant; any other
        (Django's, a library's, one added later) is for platform staff only."""
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, (_TenantPermissions, PlatformOnlyAdmin)):
            admin_class = type(admin_class.__name__, (PlatformOnlyAdmin, admin_class), {})
        super().register(model_or_iterable, admin_class, **options)


class _TenantPermissions:
    """The permission methods shared by model admins and inlines.

    `tenant_field` leads from the model to its tenant (`"pk"` for tenants). `view_action`,
    `change_action`, `add_action` and `delete_action` name what each needs; None means nobody
    (the page is read-only for everyone)."""

    tenant_field = "tenant"
    view_action: Action = Action.VIEW
    change_action: Action | None = Action.MANAGE
    add_action: Action | None = Action.MANAGE
    delete_action: Action | None = Action.MANAGE

    def _tenant_of(self, obj: Model) -> Any:
        return access.tenant_of(obj, self.tenant_field)

    def _allowed(self, request: HttpRequest, action: Action | None, obj: Model | None) -> bool:
        if action is None:
            return False
        if obj is None:
            return access.can_anywhere(request.user, action)
        return access.can(request.user, action, self._tenant_of(obj))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, self.view_action, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, self.change_action, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, self.delete_action, obj)


class TenantScopedAdmin(_TenantPermissions, admin.ModelAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        return access.scope(queryset, request.user, tenant_field=self.tenant_field)

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        """Another tenant's object, like a missing one, is a 404 (Django would redirect)."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.can_anywhere(request.user, self.view_action)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.add_action, None)

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        """A new object's tenant can only be one where the user may add it."""
        if db_field.name == "tenant" and self.add_action is not None:
            kwargs["queryset"] = access.tenants_where(request.user, self.add_action)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def scope_for(self, request: HttpRequest, queryset: QuerySet, action: Action) -> QuerySet:
        """`queryset` narrowed to the tenants where the user may take `action` (for bulk
        actions over a selection that may span tenants of different roles)."""
        return access.scope(queryset, request.user, tenant_field=self.tenant_field, action=action)


class TenantScopedInline(_TenantPermissions):
    """For inlines: the tenant is the parent object's (`obj` is the parent in Django's inline
    permission methods)."""

    def _tenant_of(self, obj: Model) -> Any:
        return access.tenant_of(obj)

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._allowed(request, self.add_action, obj)
