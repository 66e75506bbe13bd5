from django import forms
from django.core.exceptions import ValidationError

from integrations.models import WebhookEndpoint, WebhookEvent
from integrations.services import webhook_events_validate, webhook_url_validate


class WebhookEndpointForm(forms.ModelForm):
    """Add or change an endpoint; the URL and events are checked by the services (the same
    rules as the API), the secret is generated, never typed."""

    url = forms.URLField(
        max_length=2000,
        assume_scheme="https",
        help_text="https, on a public address: checked now and again at every send.",
    )
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="The events sent to this endpoint.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["tenant", "url", "description", "events", "is_active"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if self.instance.pk and url == self.instance.url:
            return url
        try:
            webhook_url_validate(url)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["url"]) from exc
        return url

    def clean_events(self) -> list[str]:
        try:
            return webhook_events_validate(list(self.cleaned_data["events"]))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["events"]) from exc
