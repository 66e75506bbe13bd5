import django_filters

from conversations.models import (
    ChatThread,
    Contact,
    Direction,
    Message,
    MessageStatus,
    ThreadStatus,
)
from conversations.selectors import OPTED_OUT
from core.crypto import (
    ig_user_lookup,
    normalize_phone,
    phone_lookup,
    provider_id_pseudonym,
    wa_user_lookup,
)
from core.filters import StrictBooleanFilter, StrictFilterSet, StrictIsoDateTimeFilter


class ContactFilter(StrictFilterSet):
    opted_out = StrictBooleanFilter(method="filter_opted_out", label="Opted out")
    erased = StrictBooleanFilter(
        field_name="erased_at", lookup_expr="isnull", exclude=True, label="Erased"
    )
    phone = django_filters.CharFilter(method="filter_phone", label="Phone (E.164, exact)")
    wa_user_id = django_filters.CharFilter(
        method="filter_wa_user_id", label="WhatsApp user id (exact, e.g. US.1234…)"
    )
    ig_user_id = django_filters.CharFilter(
        method="filter_ig_user_id", label="Instagram-scoped user id (exact)"
    )
    external_id = django_filters.CharFilter()
    created_since = StrictIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = Contact
        fields = [
            "opted_out",
            "erased",
            "phone",
            "wa_user_id",
            "ig_user_id",
            "external_id",
            "created_since",
        ]

    def filter_opted_out(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(OPTED_OUT) if value else queryset.exclude(OPTED_OUT)

    def filter_phone(self, queryset, name, value):
        # Found through the blind index: the phone itself is encrypted and cannot be filtered.
        normalized = normalize_phone(value)
        if not normalized:
            return queryset.none()
        return queryset.filter(phone_lookup=phone_lookup(normalized))

    def filter_wa_user_id(self, queryset, name, value):
        # Found through its blind index, like the phone.
        lookup = wa_user_lookup(value)
        return queryset.filter(wa_user_lookup=lookup) if lookup else queryset.none()

    def filter_ig_user_id(self, queryset, name, value):
        # Found through its own blind index (never a phone's or a WhatsApp id's).
        lookup = ig_user_lookup(value)
        return queryset.filter(ig_user_lookup=lookup) if lookup else queryset.none()


class ThreadFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=ThreadStatus.choices)
    channel = django_filters.UUIDFilter(field_name="channel_id")
    contact = django_filters.UUIDFilter(field_name="contact_id")
    needs_human = StrictBooleanFilter()
    updated_since = StrictIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = ChatThread
        fields = ["status", "channel", "contact", "needs_human", "updated_since"]


class MessageFilter(StrictFilterSet):
    direction = django_filters.ChoiceFilter(choices=Direction.choices)
    status = django_filters.ChoiceFilter(choices=MessageStatus.choices)
    provider_message_id = django_filters.CharFilter(
        method="filter_provider_message_id",
        max_length=1000,  # an Instagram mid runs past 128 (stored as a keyed hash)
        label="The provider's message id (exact), as the provider gave it or as shown",
    )

    class Meta:
        model = Message
        fields = ["direction", "status", "provider_message_id"]

    def filter_provider_message_id(self, queryset, name, value):
        # Stored pseudonymised (a Cloud API `wamid.…` as a keyed hash), so the raw id is
        # turned into its stored form; the stored form (`wamid.h:…`) is accepted as it is.
        return queryset.filter(provider_message_id=provider_id_pseudonym(value.strip()))
