"""HTTP requests to addresses a tenant chose (its webhook endpoints), safe from SSRF.

A URL a tenant typed must never reach our own network: the metadata service, the database,
Redis, the admin on localhost. Checking the URL when it is registered is not enough (the name
may resolve elsewhere tomorrow, or between our check and our connect: DNS rebinding), so the
check happens when the request is sent, and the connection goes to the very address that was
checked:

- `destination_check(url)` resolves the host and refuses the URL unless every address it
  resolves to is public (not private, loopback, link-local, multicast, reserved, unspecified,
  shared or documentation space; IPv4 addresses inside IPv6 ones — mapped, 6to4, NAT64 — are
  checked as the IPv4 address they carry). Only `https` is allowed.
- `PinnedAdapter` (a requests adapter) does that check for each request it sends and connects
  to the first checked address, keeping the name for the `Host` header, for TLS's SNI and for
  the certificate check. Environment proxies are ignored, redirects are the caller's to refuse.

`OUTBOUND_WEBHOOKS_ALLOW_PRIVATE=true` (tests, private deployments) lifts the address and
scheme rules; the connection is still pinned to the address resolved once.

Written here rather than taken from a library: `advocate`, the one maintained-looking
candidate, was last released in 2020 for urllib3 1.x.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The resolver (tests replace it: nothing in the tests reaches a DNS server).
_getaddrinfo = socket.getaddrinfo
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeDestination(ValueError):
    """The URL is refused: its scheme, or an address its host resolves to, is not allowed.
    `code` is short and fixed (logged and stored), the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def allow_private() -> bool:
    return bool(getattr(settings, "OUTBOUND_WEBHOOKS_ALLOW_PRIVATE", False))


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address (and any IPv4 it carries is one too)."""
    if (
        not ip.is_global
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
    ):
        return False
    inner = _embedded_ipv4(ip)
    return inner is None or address_is_public(inner)


@dataclass(frozen=True)
class Destination:
    """A checked URL: its host name, port, and the addresses it resolved to (all allowed)."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def url_shape_check(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of `url`, or UnsafeDestination (no resolving here)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination("invalid_url", "The URL cannot be parsed.") from exc
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if allow_private() else ("https",)
    if scheme not in allowed:
        raise UnsafeDestination("scheme", "Only https URLs are allowed.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeDestination("invalid_url", "The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeDestination("invalid_url", "The URL must not carry a user name or password.")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = _getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeDestination("dns", "The host name does not resolve.") from exc
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # no IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeDestination("dns", "The host name does not resolve.")
    return addresses


def destination_check(url: str) -> Destination:
    """Resolve `url`'s host once and check every address; UnsafeDestination unless all are
    public (or `OUTBOUND_WEBHOOKS_ALLOW_PRIVATE` is on)."""
    scheme, host, port = url_shape_check(url)
    addresses = _resolve(host, port)
    if not allow_private():
        for address in addresses:
            if not address_is_public(ipaddress.ip_address(address)):
                raise UnsafeDestination(
                    "private_address",
                    "The host resolves to a private or reserved address; only public "
                    "addresses are allowed.",
                )
    return Destination(scheme=scheme, host=host, port=port, addresses=tuple(addresses))


_PIN_ATTR = "_chatai_pinned_host"


class PinnedAdapter(HTTPAdapter):
    """Checks each request's destination at send time and connects to the checked address
    (see the module's docstring). Raises UnsafeDestination before any connection."""

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        destination = destination_check(request.url or "")
        parts = urlsplit(request.url or "")
        address = destination.addresses[0]
        netloc = f"[{address}]" if ":" in address else address
        default_port = 443 if destination.scheme == "https" else 80
        if destination.port != default_port:
            netloc = f"{netloc}:{destination.port}"
        host_header = destination.host
        if destination.port != default_port:
            host_header = f"{host_header}:{destination.port}"
        request.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        request.headers["Host"] = host_header
        setattr(request, _PIN_ATTR, destination.host)
        return super().send(request, *args, **kwargs)

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        pinned = getattr(request, _PIN_ATTR, None)
        if pinned and host_params.get("scheme") == "https":
            # Connect to the address, but speak TLS to the name: SNI and certificate check.
            pool_kwargs["server_hostname"] = pinned
            pool_kwargs["assert_hostname"] = pinned
        return host_params, pool_kwargs


def pinned_session() -> Session:
    """A requests session whose every request goes through `PinnedAdapter`, ignoring proxy
    and certificate settings from the environment."""
    session = Session()
    session.trust_env = False
    # Redirects: the caller passes allow_redirects=False (max_redirects=0 would make requests
    # raise even then, while it computes the next request it does not follow).
    adapter = PinnedAdapter(pool_connections=16, pool_maxsize=16, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
