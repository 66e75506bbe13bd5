"""Operational endpoints that are not part of the tenant API (metrics)."""

urlpatterns: list = []
