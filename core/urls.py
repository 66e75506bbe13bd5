"""Operational endpoints that are not part of the tenant API (metrics)."""

from django.urls import path

from core.metrics import metrics_view

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
]
