"""The admin's flow upload form: a channel, and a JSON file or pasted JSON.

The form only reads and parses the JSON and runs the engine's validation so that every issue
(with its JSON path) can be shown at once; storing goes through `flows.services.flow_create`.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db.models import QuerySet

from channels_app.models import ChannelInstance
from flows.engine import ValidationIssue
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
    file = forms.FileField(required=False, help_text="A flow definition .json file (at most 2 MB).")
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

    def _raw_json(self) -> str | None:
        upload = self.cleaned_data.get("file")
        pasted = (self.cleaned_data.get("definition_text") or "").strip()
        if upload and pasted:
            raise forms.ValidationError("Upload a file or paste JSON, not both.")
        if not upload and not pasted:
            raise forms.ValidationError("Upload a .json file or paste the flow JSON.")
        if not upload:
            return pasted
        if upload.size > MAX_UPLOAD_BYTES:
            self.add_error("file", "The file is larger than 2 MB.")
            return None
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            self.add_error("file", "The file is not UTF-8 text.")
            return None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        raw = self._raw_json()
        if raw is None:
            return cleaned
        try:
            document = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                "This is not valid JSON: %(msg)s at line %(line)s, column %(col)s.",
                params={"msg": exc.msg, "line": exc.lineno, "col": exc.colno},
            ) from None
        except (ValueError, RecursionError):
            raise forms.ValidationError(
                "This JSON cannot be read (nesting too deep or a number too long)."
            ) from None
        self.issues = flow_validate(definition=document)
        if self.issues:
            raise forms.ValidationError(
                "The flow is invalid (%(count)s problem(s), listed below). Nothing was stored.",
                params={"count": len(self.issues)},
            )
        self.definition = document
        return cleaned
