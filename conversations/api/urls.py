"""Routes under /api/tenants/<tenant>/ (assembled in chatai/api_urls.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from conversations.api import views

tenant_router = SimpleRouter()
tenant_router.register("contacts", views.ContactViewSet, basename="contact")
tenant_router.register("threads", views.ThreadViewSet, basename="thread")

urlpatterns = [
    path(
        "threads/<uuid:thread>/messages/",
        views.ThreadMessagesView.as_view(),
        name="thread-messages",
    ),
    path("stats/", views.StatsView.as_view(), name="stats"),
]
