"""The project's own pages, which need more than one app: the landing page at `/` and the
metrics endpoint (`core` imports no app, see tests/test_layers.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe
from django_prometheus.exports import ExportToDjangoView

from core.metrics import bearer_token_valid
from tenants import access
from tenants.admin_base import inbox_url


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    """What chatai is, and the ways in: the staff admin, the API docs, health. Someone who may
    use the admin gets a button to the inbox instead of the sign-in. Shows nobody's data."""
    signed_in = access.has_any_access(request.user)
    return render(
        request,
        "landing.html",
        {"signed_in": signed_in, "inbox_url": inbox_url() if signed_in else None},
    )


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of every metric, for the token holder or platform staff only."""
    if not (
        access.is_platform_staff(getattr(request, "user", None)) or bearer_token_valid(request)
    ):
        return JsonResponse(
            {
                "error": {
                    "code": "permission_denied",
                    "message": "Metrics need a bearer token or a staff session.",
                    "details": [],
                }
            },
            status=403,
        )
    return ExportToDjangoView(request)
