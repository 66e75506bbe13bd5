"""`GET /api/`: where to start, for a person in the browsable API or a client."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView


class ApiRootView(APIView):
    """The API's entry points. Tenant resources live under `/api/tenants/{tenant}/`;
    authenticate with `Authorization: Api-Key <key>` or a staff session."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        def url(name: str) -> str:
            return reverse(name, request=request)

        return Response(
            {
                "docs": url("api-docs"),
                "schema": url("api-schema"),
                "login": url("controller-auth"),
                "me": url("controller-me"),
                "tenants": url("tenant-list"),
            }
        )
