"""The tenant API (see tenants/api, channels_app/api, conversations/api, flows/api)."""

urlpatterns: list = []
