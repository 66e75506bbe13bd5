"""Helpers of the inbox tests."""

from django.test import Client


def logged_in(user) -> Client:
    """A browser-like client of `user` (a server error is an answer here, not an exception)."""
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client
