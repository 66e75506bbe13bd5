"""Provider webhooks (see channels_app/webhooks.py): the shared endpoint, the legacy Twilio
paths, and the paths installed providers own."""

from django.urls import path

from channels_app import webhooks

urlpatterns = [
    path("api/webhooks/whatsapp", webhooks.whatsapp_webhook, name="webhook-whatsapp"),
    path("api/webhooks/twilio/whatsapp", webhooks.twilio_webhook, name="webhook-twilio"),
    path("webhooks/twilio/whatsapp", webhooks.twilio_webhook, name="webhook-twilio-legacy"),
    # Last: a provider's own path (`Provider.webhook_path`), e.g. api/webhooks/instagram.
    path("api/webhooks/<slug:name>", webhooks.provider_webhook, name="webhook-provider"),
]
