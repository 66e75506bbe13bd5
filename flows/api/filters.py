"""Filters of the flows API. The channel is a plain UUID filter: a model-choice filter would
list (in the browsable API's form) and validate against every tenant's channels."""

import django_filters

from core.filters import StrictBooleanFilter, StrictFilterSet
from flows.models import Flow


class FlowFilter(StrictFilterSet):
    channel = django_filters.UUIDFilter(field_name="channel_id")
    flow_id = django_filters.CharFilter()
    is_active = StrictBooleanFilter()

    class Meta:
        model = Flow
        fields = ["channel", "flow_id", "is_active"]
