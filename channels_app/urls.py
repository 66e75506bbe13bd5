"""Provider webhooks (see channels_app/webhooks.py)."""

urlpatterns: list = []
