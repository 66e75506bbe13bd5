"""The container health check asks with a Host header the app accepts."""

import pytest

from core.healthcheck import host_header


@pytest.mark.parametrize(
    ("allowed", "host"),
    [
        ("chatai.example.com", "chatai.example.com"),
        (" api.example.com , other.example.com", "api.example.com"),
        (".example.com", "example.com"),
        ("*", "localhost"),
        ("", "localhost"),
    ],
)
def test_the_host_header_is_one_the_app_accepts(allowed, host):
    assert host_header(allowed) == host


def test_the_check_passes_against_the_app(live_server, settings, monkeypatch):
    from core import healthcheck

    settings.ALLOWED_HOSTS = ["chatai.example.com"]  # as in production: not 127.0.0.1
    monkeypatch.setenv("ALLOWED_HOSTS", "chatai.example.com")
    monkeypatch.setenv("PORT", live_server.url.rsplit(":", 1)[1])
    assert healthcheck.main() == 0
