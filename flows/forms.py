"""The admin's flow upload form: a channel, and a JSON file or pasted JSON.

The form only reads and parses the JSON and runs the engine's validation so that every issue
(with its JSON path) can be shown at once; storing goes through `flows.services.flow_create`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from channels_app.models import ChannelInstance
from flows.engine import ValidationIssue
from flows.engine.reading import FlowReadError, flow_json_from_bytes, flow_json_from_text
from flows.services import flow_validate

MAX_UPLOAD_BYTES = 2 * 1024 * 1024


class ChannelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ChannelInstance) -> str:
        return f"{obj.tenant.name} — {obj.identifier} ({obj.get_provider_display()})"


class FlowUploadForm(forms.Form):
    channel = ChannelChoiceField(
        queryset=ChannelInstance.objects.none(),
        help_text="The tenant's WhatsApp channel this flow runs on.",
    )
    file = forms.FileField(
        required=False, help_text="A flow definition .json file (at most 2 MiB)."
    )
    definition_text = forms.CharField(
        required=False,
        label="Or paste the JSON",
        widget=forms.Textarea(
            attrs={
                "rows": 18,
                "cols": 100,
                "spellcheck": "false",
                "class": "flow-json",
            }
        ),
    )
    activate = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Make this the active version (other versions of this flow_id are "
        "deactivated; conversations already running finish on their version).",
    )

    def __init__(
        self, *args: Any, tenant_id: Any = None, tenants: QuerySet | None = None, **kwargs: Any
    ) -> None:
        """`tenants`: the tenants whose channels may be chosen (those the user owns)."""
        super().__init__(*args, **kwargs)
        queryset = ChannelInstance.objects.select_related("tenant").order_by(
            "tenant__name", "identifier"
        )
        if tenants is not None:
            queryset = queryset.filter(tenant__in=tenants)
        if tenant_id:
            queryset = queryset.filter(tenant_id=tenant_id)
        self.fields["channel"].queryset = queryset
        self.issues: list[ValidationIssue] = []
        self.definition: dict | None = None

    def _document(self) -> tuple[bool, object]:
        """(read, document): the parsed JSON of the upload or the pasted text.

        A file that is too large or not UTF-8 is an error on ``file`` (``(False, None)``); JSON
        that cannot be parsed is a form error. The wording is the engine's
        (:mod:`flows.engine.reading`), shared with the API and ``validate_flow``.
        """
        upload = self.cleaned_data.get("file")
        pasted = (self.cleaned_data.get("definition_text") or "").strip()
        if upload and pasted:
            raise forms.ValidationError("Upload a file or paste JSON, not both.")
        if not upload and not pasted:
            raise forms.ValidationError("Upload a .json file or paste the flow JSON.")
        try:
            if not upload:
                return True, flow_json_from_text(pasted)
            return True, flow_json_from_bytes(
                upload.read(MAX_UPLOAD_BYTES + 1), max_bytes=MAX_UPLOAD_BYTES
            )
        except FlowReadError as exc:
            if exc.kind != "json":
                self.add_error("file", f"The file {exc.reason}.")
                return False, None
            raise forms.ValidationError(f"This {exc.reason}.") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        read, document = self._document()
        if not read:
            return cleaned
        self.issues = flow_validate(definition=document)
        if self.issues:
            raise forms.ValidationError(
                "The flow is invalid (%(count)s problem(s), listed below). Nothing was stored.",
                params={"count": len(self.issues)},
            )
        self.definition = document
        return cleaned


PERIODS = [
    ("1", "Last 24 hours"),
    ("7", "Last 7 days"),
    ("30", "Last 30 days"),
    ("90", "Last 90 days"),
    ("365", "Last 365 days"),
]
DEFAULT_PERIOD = 30


class DiagramPeriodForm(forms.Form):
    """The period whose counts the flow diagram shows (``?days=N``)."""

    days = forms.TypedChoiceField(
        choices=PERIODS,
        coerce=int,
        initial=str(DEFAULT_PERIOD),
        label="Show counts for",
        required=False,
        empty_value=DEFAULT_PERIOD,
    )

    def period_days(self) -> int:
        """The chosen number of days, or the default when the choice is missing or invalid."""
        if self.is_valid():
            return int(self.cleaned_data["days"])
        return DEFAULT_PERIOD
