"""Fixtures of the webhook tests: a fake resolver, an HTTP layer that answers for the
receivers (`responses`: nothing reaches the network), and a clock to move."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.utils import timezone

from core import outbound_http

HOOK_HOST = "hooks.example.com"
HOOK_URL = f"https://{HOOK_HOST}/chatai"
PUBLIC_IP = "93.184.216.34"
PINNED_URL = f"https://{PUBLIC_IP}/chatai"  # where the request really goes: the checked address
OTHER_HOST = "crm.example.org"
OTHER_IP = "93.184.216.35"


class FakeResolver:
    """`socket.getaddrinfo` for the names of `table` (a list of addresses, or a list of such
    lists answered in turn); any other name does not resolve. Records the names asked."""

    def __init__(self) -> None:
        self.table: dict[str, list] = {HOOK_HOST: [PUBLIC_IP], OTHER_HOST: [OTHER_IP]}
        self.asked: list[str] = []

    def __call__(self, host, port, *args, **kwargs):
        self.asked.append(host)
        answer = self.table.get(host)
        if answer is None:
            try:
                import ipaddress

                ipaddress.ip_address(host)
                answer = [host]  # a literal address resolves to itself
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, "not known") from None
        if answer and isinstance(answer[0], list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        family = {True: socket.AF_INET6, False: socket.AF_INET}
        return [(family[":" in a], socket.SOCK_STREAM, 6, "", (a, port)) for a in answer]


@pytest.fixture(autouse=True)
def dns(monkeypatch) -> FakeResolver:
    resolver = FakeResolver()
    monkeypatch.setattr(outbound_http, "_getaddrinfo", resolver)
    return resolver


@pytest.fixture
def http():
    """The receivers' side: register answers with `http.add(...)`; an unregistered URL is a
    connection error, so nothing can reach the network."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    value = Clock()
    monkeypatch.setattr(timezone, "now", value)
    return value
