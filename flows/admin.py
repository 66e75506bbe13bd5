"""Flows in the Django admin: upload (validated in full, created through `flow_create`),
versions, activation through `flow_set_active`, a readable view of a flow's nodes, and
read-only sessions.

A stored flow version never changes: the change form is read-only and a new definition is a
new upload (a new version). Versions are deactivated rather than deleted, because sessions
keep a reference to the version they ran on.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from pydantic import ValidationError as PydanticValidationError

from flows import selectors
from flows.diagram import DiagramPending, DiagramUnavailable, flow_layout
from flows.engine import FlowValidationError
from flows.engine.definition import BranchCase
from flows.engine.graph import describe_condition, node_exits
from flows.forms import DiagramPeriodForm, FlowUploadForm
from flows.models import Flow, FlowSession
from flows.services import flow_create, flow_set_active
from tenants import access
from tenants.access import Action
from tenants.admin_base import TenantScopedAdmin

logger = logging.getLogger(__name__)

_TARGET_LABELS = (
    ("next", "next"),
    ("default", "default"),
    ("on_invalid", "on invalid reply"),
    ("on_error", "on model error"),
)


def _condition_text(case: Any) -> str:
    """A branch case's condition in plain language ("idade ≥ 18 and plano is ouro")."""
    try:
        return describe_condition(BranchCase.model_validate(case).when)
    except (PydanticValidationError, TypeError):  # a stored version older than a rule
        return json.dumps(case.get("when") if isinstance(case, dict) else case, ensure_ascii=False)


def node_rows(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """A readable summary of each node: type, texts, choices and where it goes."""
    rows = []
    for node in definition.get("nodes", []):
        if not isinstance(node, dict):
            continue
        texts = [
            (label, node[key])
            for key, label in (
                ("text", "text"),
                ("instructions", "instructions"),
                ("retry_text", "retry"),
                ("fallback_text", "fallback"),
                ("reason", "reason"),
            )
            if node.get(key)
        ]
        if node.get("type") == "set":
            texts += [(f"set {name}", value) for name, value in node.get("values", {}).items()]
        if node.get("media_url"):
            texts.append(("media", node["media_url"]))
        choices = [
            {
                "number": number,
                "id": choice.get("id"),
                "label": choice.get("label"),
                "keywords": ", ".join(choice.get("keywords", [])),
                "next": choice.get("next"),
            }
            for number, choice in enumerate(node.get("choices", []), start=1)
            if isinstance(choice, dict)
        ]
        targets = [(label, node[key]) for key, label in _TARGET_LABELS if node.get(key)]
        timeout = node.get("timeout")
        if isinstance(timeout, dict):
            targets.append((f"no reply in {timeout.get('seconds')} s", timeout.get("next")))
        for number, case in enumerate(node.get("cases", []), start=1):
            targets.insert(
                number - 1, (f"case {number}: if {_condition_text(case)}", case.get("next"))
            )
        details = []
        for key in ("save_as", "validate", "max_retries", "max_turns", "history_messages"):
            if key in node:
                value = node[key]
                details.append((key, json.dumps(value) if not isinstance(value, str) else value))
        if node.get("exit_keywords"):
            details.append(("exit_keywords", ", ".join(node["exit_keywords"])))
        rows.append(
            {
                "id": node.get("id"),
                "type": node.get("type"),
                "is_start": node.get("id") == definition.get("start"),
                "texts": texts,
                "choices": choices,
                "targets": targets,
                "details": details,
                "ends": node.get("type") in ("end", "handoff")
                or (node.get("type") == "message" and not node.get("next")),
            }
        )
    return rows


@admin.register(Flow)
class FlowAdmin(TenantScopedAdmin):
    list_display = [
        "flow_id",
        "version",
        "name",
        "tenant",
        "channel",
        "is_active",
        "is_default",
        "weight",
        "created_at",
    ]
    list_filter = [
        "is_active",
        "is_default",
        "trigger_match",
        ("tenant", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["flow_id", "name", "channel__identifier", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "channel"]
    ordering = ["tenant__name", "flow_id", "-version"]
    actions = ["activate_selected", "deactivate_selected"]

    change_form_template = "admin/flows/flow/change_form.html"

    class Media:
        css = {"all": ["core/admin.css", "flows/diagram.css"]}
        js = ["flows/diagram.js"]

    fieldsets = [
        (None, {"fields": ["flow_id", "version", "name", "tenant", "channel", "is_active"]}),
        (
            "Trigger and settings (copied from the definition)",
            {
                "fields": [
                    "trigger_keywords",
                    "trigger_match",
                    "is_default",
                    "weight",
                    "ignore_keywords",
                ]
            },
        ),
        ("Versions", {"fields": ["versions", "nodes_link"]}),
        ("Definition (JSON)", {"fields": ["definition_pretty"], "classes": ["collapse"]}),
        ("Record", {"fields": ["id", "created_by", "created_at", "updated_at"]}),
    ]
    readonly_fields = [
        "id",
        "flow_id",
        "version",
        "name",
        "tenant",
        "channel",
        "is_active",
        "trigger_keywords",
        "trigger_match",
        "is_default",
        "weight",
        "ignore_keywords",
        "versions",
        "nodes_link",
        "definition_pretty",
        "created_by",
        "created_at",
        "updated_at",
    ]

    # --- permissions: versions are immutable and never deleted here --------------------

    delete_action = None

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse("admin:flows_flow_upload"))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ):
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Flow | None = None,
    ) -> HttpResponse:
        # Reached after Django's permission checks: the diagram is drawn for people who may
        # see this version, on GET only.
        if change and obj is not None and request.method == "GET":
            context.update(self._diagram_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _diagram_context(self, request: HttpRequest, flow: Flow) -> dict[str, Any]:
        """The diagram of the version, with the counts of the chosen period, and the same
        counts as table rows (shown even when the drawing is not available). A bounded number
        of queries: two aggregates, whatever the history."""
        period = DiagramPeriodForm(request.GET or None)
        days = period.period_days()
        until = timezone.now()
        context: dict[str, Any] = {"period_form": period, "period_days": days}
        try:
            definition = selectors.flow_definition_parsed(
                flow_pk=flow.pk, definition=flow.definition
            )
        except FlowValidationError:
            context["diagram_error"] = "unreadable"
            return context
        counts = selectors.flow_path_counts(
            flow_pk=flow.pk, since=until - timedelta(days=days), until=until
        )
        rows = [
            (
                node.id,
                counts.node(node.id),
                [
                    (e.label or "next", e.target, counts.exit(node.id, e.key))
                    for e in node_exits(node)
                ],
            )
            for node in definition.nodes
        ]
        context["diagram"] = {"rows": rows}
        try:
            layout = flow_layout(flow_pk=flow.pk, definition=definition)
        except DiagramPending:
            context["diagram_error"] = "pending"
            return context
        except DiagramUnavailable as exc:
            logger.warning(
                "flow diagram unavailable", extra={"flow": str(flow.pk), "error": str(exc)}
            )
            context["diagram_error"] = "unavailable"
            return context
        context["diagram"].update(
            layout=layout,
            nodes=[(node, counts.node(node.id)) for node in layout.nodes],
            edges=[(edge, counts.exit(edge.source, edge.key)) for edge in layout.edges],
        )
        return context

    # --- read-only displays -------------------------------------------------------------

    @admin.display(description="Definition")
    def definition_pretty(self, obj: Flow) -> str:
        return format_html(
            '<pre class="flow-definition">{}</pre>',
            json.dumps(obj.definition, indent=2, ensure_ascii=False),
        )

    @admin.display(description="Nodes")
    def nodes_link(self, obj: Flow) -> str:
        if obj.pk is None:
            return "-"
        url = reverse("admin:flows_flow_nodes", args=[obj.pk])
        return format_html('<a href="{}">Readable view of the nodes</a>', url)

    @admin.display(description="All versions")
    def versions(self, obj: Flow) -> str:
        if obj.pk is None:
            return "-"
        rows = selectors.flow_versions(channel_id=obj.channel_id, flow_id=obj.flow_id).only(
            "pk", "version", "is_active", "created_at"
        )
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">v{}</a>{} — {}</li>',
                (
                    (
                        reverse("admin:flows_flow_change", args=[row.pk]),
                        row.version,
                        " (active)" if row.is_active else "",
                        row.created_at.strftime("%Y-%m-%d %H:%M"),
                    )
                    for row in rows
                ),
            ),
        )

    # --- actions ------------------------------------------------------------------------

    @admin.action(description="Activate the selected versions", permissions=["change"])
    def activate_selected(self, request: HttpRequest, queryset: QuerySet[Flow]) -> None:
        flows = self._manageable(request, queryset)
        if flows is None:
            return
        keys = [(flow.channel_id, flow.flow_id) for flow in flows]
        if len(keys) != len(set(keys)):
            self.message_user(
                request,
                "Select at most one version per flow and channel: only one can be active.",
                messages.ERROR,
            )
            return
        for flow in flows:
            flow_set_active(flow=flow, is_active=True)
        self.message_user(request, f"Activated {len(flows)} flow version(s).", messages.SUCCESS)

    @admin.action(description="Deactivate the selected versions", permissions=["change"])
    def deactivate_selected(self, request: HttpRequest, queryset: QuerySet[Flow]) -> None:
        flows = self._manageable(request, queryset)
        if flows is None:
            return
        for flow in flows:
            flow_set_active(flow=flow, is_active=False)
        self.message_user(request, f"Deactivated {len(flows)} flow version(s).", messages.SUCCESS)

    def _manageable(self, request: HttpRequest, queryset: QuerySet[Flow]) -> list[Flow] | None:
        """The selection, if the user may change every flow in it (a member may view
        tenants where they are not an owner); None, with a message, otherwise."""
        flows = list(self.scope_for(request, queryset, Action.MANAGE))
        if len(flows) != queryset.count():
            self.message_user(
                request,
                "Nothing changed: the selection holds flows of tenants you do not own.",
                messages.ERROR,
            )
            return None
        return flows

    # --- extra views --------------------------------------------------------------------

    def get_urls(self) -> list:
        custom = [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="flows_flow_upload",
            ),
            path(
                "<uuid:object_id>/nodes/",
                self.admin_site.admin_view(self.nodes_view),
                name="flows_flow_nodes",
            ),
        ]
        return custom + super().get_urls()

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        tenant_id = request.GET.get("tenant") or None
        tenants = access.tenants_where(request.user, Action.MANAGE)
        try:
            form = FlowUploadForm(
                request.POST or None, request.FILES or None, tenant_id=tenant_id, tenants=tenants
            )
        except ValidationError:  # a malformed ?tenant= id
            form = FlowUploadForm(request.POST or None, request.FILES or None, tenants=tenants)
        if request.method == "POST" and form.is_valid():
            channel = form.cleaned_data["channel"]
            try:
                flow = flow_create(
                    tenant=channel.tenant,
                    channel=channel,
                    definition=form.definition,
                    activate=form.cleaned_data["activate"],
                    created_by=request.user,
                )
            except FlowValidationError as exc:
                form.issues = exc.issues
                form.add_error(None, "The flow is invalid. Nothing was stored.")
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                self.log_addition(request, flow, f"Uploaded version {flow.version}.")
                self.message_user(
                    request,
                    f"Stored {flow.flow_id} version {flow.version}"
                    + (" (active)." if flow.is_active else " (inactive)."),
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:flows_flow_change", args=[flow.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload a flow",
            "form": form,
            "issues": form.issues,
        }
        return TemplateResponse(request, "admin/flows/flow/upload.html", context)

    def nodes_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        flow = get_object_or_404(
            self.get_queryset(request).select_related("tenant", "channel"), pk=object_id
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{flow.flow_id} v{flow.version}: nodes",
            "flow": flow,
            "nodes": node_rows(flow.definition),
            "definition": flow.definition,
        }
        return TemplateResponse(request, "admin/flows/flow/nodes.html", context)


@admin.register(FlowSession)
class FlowSessionAdmin(TenantScopedAdmin):
    # The first column reads "Welcome v3 · waiting · 2026-03-12 14:05" (flow, status, start).
    list_display = [
        "__str__",
        "thread",
        "current_node",
        "handed_off",
        "waiting_since",
        "wait_expires_at",
    ]
    list_filter = ["status", "handed_off"]
    search_fields = ["flow__flow_id", "current_node"]
    list_select_related = ["flow", "thread__contact"]
    ordering = ["-created_at"]
    date_hierarchy = "created_at"
    change_action = add_action = delete_action = None

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """With the flow (the session's name) and the thread. The changelist then skips
        `list_select_related`, so this names everything its rows show."""
        return super().get_queryset(request).select_related("flow", "thread__contact")

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        """What the contact answered in the flow (`variables`) is for those who may export
        the contact's data, as on the contact's page and in the inbox."""
        exclude = list(super().get_exclude(request, obj) or [])
        if obj is None or not access.can(request.user, Action.EXPORT, obj.tenant_id):
            exclude.append("variables")
        return exclude
