"""Query filters that refuse what they cannot read (400 naming the parameter), never ignore it.

django-filter skips empty values by design and its boolean widget turns anything it does not
know (`maybe`, `null`) into "no filter"; a client that mistypes a filter would then silently get
everything. Here every filter of a `StrictFilterSet`:

- refuses an empty value (`?updated_since=`) and a repeated one (`?status=open&status=closed`);
- reads booleans as `true` / `false` only;
- reads date-times as RFC 3339 with an offset below 16 hours (what PostgreSQL stores), compared
  in UTC, so no value reaches the database that it would refuse with an error.

The OpenAPI schema says the same (`core.api_base.ChataiAutoSchema`): `minLength: 1` on strings,
`DATETIME_PATTERN` on date-times.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django.db import models
from django_filters.rest_framework import FilterSet

# RFC 3339 date-time with an offset PostgreSQL accepts (-15:59..+15:59; real ones are -12..+14).
DATETIME_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-](0\d|1[0-5]):[0-5]\d)$"
)
_DATETIME = re.compile(DATETIME_PATTERN)
_MAX_OFFSET = timedelta(hours=16)


class StrictBooleanField(forms.Field):
    """`true` or `false` (any case); anything else is an error, not "no filter"."""

    widget = forms.Select(choices=(("", "---------"), ("true", "true"), ("false", "false")))

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        lowered = str(value).strip().lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise forms.ValidationError("Must be `true` or `false`.", code="invalid")

    def validate(self, value: Any) -> None:  # None ("not given") is allowed
        return None


class RFC3339DateTimeField(forms.Field):
    """An RFC 3339 date-time with its offset (e.g. `2025-01-31T09:00:00Z`), returned in UTC.

    Offsets of 16 hours or more are refused (no place uses them and PostgreSQL cannot store
    them); a value whose UTC instant falls outside the years 1..9999 is clamped to the nearest
    representable instant, which compares the same way.
    """

    def to_python(self, value: Any) -> datetime | None:
        if value in (None, ""):
            return None
        text = str(value).strip()
        if not _DATETIME.match(text):
            raise forms.ValidationError(
                "Must be an RFC 3339 date-time with an offset, e.g. 2025-01-31T09:00:00Z.",
                code="invalid",
            )
        try:
            parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        except ValueError:
            raise forms.ValidationError("Not a valid date-time.", code="invalid") from None
        offset = parsed.utcoffset()
        if offset is None or abs(offset) >= _MAX_OFFSET:
            raise forms.ValidationError(
                "The UTC offset must be less than 16 hours.", code="invalid"
            )
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            if parsed.year == 1:
                return datetime.min.replace(tzinfo=UTC)
            return datetime.max.replace(tzinfo=UTC)


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class StrictIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = RFC3339DateTimeField


class StrictFilterSet(FilterSet):
    """A FilterSet whose invalid, empty or repeated values are a 400 naming the parameter
    (DRF's `DjangoFilterBackend` raises the form's errors as a ValidationError)."""

    FILTER_DEFAULTS = {
        **FilterSet.FILTER_DEFAULTS,
        models.DateTimeField: {"filter_class": StrictIsoDateTimeFilter},
        models.BooleanField: {"filter_class": StrictBooleanFilter},
    }

    def is_valid(self) -> bool:
        super().is_valid()  # cleans the form
        if not self.is_bound:
            return True
        for name in self.filters:
            if name not in self.data:
                continue
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else [self.data[name]]
            if len(values) > 1:
                self._refuse(name, "Give this filter once.")
            elif not str(values[0]).strip():
                self._refuse(name, "May not be empty; leave the parameter out to not filter.")
        return not self.form.errors

    def _refuse(self, name: str, message: str) -> None:
        if name not in self.form.errors:
            self.form.add_error(name, message)
