"""Provider webhooks (see channels_app/webhooks.py)."""

from django.urls import path

from channels_app import webhooks

urlpatterns = [
    path("api/webhooks/whatsapp", webhooks.whatsapp_webhook, name="webhook-whatsapp"),
    path("api/webhooks/twilio/whatsapp", webhooks.twilio_webhook, name="webhook-twilio"),
    path("webhooks/twilio/whatsapp", webhooks.twilio_webhook, name="webhook-twilio-legacy"),
]
