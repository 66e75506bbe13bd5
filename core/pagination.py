"""Pagination that refuses a malformed page number or size (400 naming the parameter).

DRF answers 404 "Invalid page" for `?page=abc` and silently ignores `?page_size=abc`. Here a
page number or size that is not a whole number in range is a client error (400); a well-formed
page past the last one is still DRF's 404.
"""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.request import Request

from core.query import query_int


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N` (from 1): malformed is a 400, past the last page a 404."""

    last_page_strings = ()

    def get_page_number(self, request: Request, paginator: Any) -> int:
        return query_int(request, self.page_query_param, minimum=1) or 1

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    "A page number, from 1. A malformed number is a 400; a page past the last "
                    "one is a 404."
                )
        return parameters


class StrictCursorPagination(pagination.CursorPagination):
    """Cursor pagination whose `page_size` (1..max_page_size) is refused when out of range."""

    def get_page_size(self, request: Request) -> int:
        if self.page_size_query_param:
            size = query_int(
                request, self.page_size_query_param, minimum=1, maximum=self.max_page_size
            )
            if size is not None:
                return size
        return self.page_size

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                if self.max_page_size:
                    parameter["schema"]["maximum"] = self.max_page_size
        return parameters
