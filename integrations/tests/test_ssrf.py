"""Only https on public addresses, checked at every send, connected to the address checked."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.outbound_http import UnsafeDestination, address_is_public, destination_check
from core.outbound_http import pinned_session as make_session
from integrations.models import WebhookAttempt, WebhookDelivery
from integrations.services import deliveries_due_send, event_publish, webhook_endpoint_create
from integrations.tests.conftest import HOOK_HOST, HOOK_URL, PINNED_URL, PUBLIC_IP
from tests import factories


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.0.1", False),
        ("127.0.0.1", False),
        ("127.8.8.8", False),
        ("0.0.0.0", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("192.0.2.1", False),  # documentation
        ("198.18.0.1", False),  # benchmarking
        ("224.0.0.1", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", False),  # 6to4 of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2001:db8::1", False),  # documentation
    ],
)
def test_which_addresses_are_public(address, public):
    assert address_is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://hooks.example.com/", "scheme"),
        ("https:///nohost", "invalid_url"),
        ("https://hooks.example.com:99999/", "invalid_url"),
        ("https://nowhere.invalid/", "dns"),
        ("https://127.0.0.1/", "private_address"),
        ("https://[::ffff:7f00:1]/", "private_address"),
        ("https://0x7f000001/", "dns"),  # not an address to Python; nothing resolves it here
    ],
)
def test_destination_check_refuses(url, code):
    with pytest.raises(UnsafeDestination) as refused:
        destination_check(url)
    assert refused.value.code == code


def _due(tenant, **endpoint_fields):
    """An endpoint registered while it was public (made directly: no check now) and one due
    delivery for it."""
    endpoint = factories.WebhookEndpointFactory(
        tenant=tenant, events=["thread.closed"], **endpoint_fields
    )
    assert event_publish(tenant_id=tenant.pk, event="thread.closed", data={}) == 1
    return endpoint


@pytest.mark.django_db
def test_dns_rebinding_after_registration_is_refused_at_send_time(tenant, dns, http):
    # given: registered while its name resolved to a public address
    webhook_endpoint_create(tenant=tenant, url=HOOK_URL, events=["thread.closed"])
    http.add(responses.POST, PINNED_URL, status=200)
    http.add(responses.POST, "https://10.0.0.7/chatai", status=200)
    # when: the name now resolves to a private address
    dns.table[HOOK_HOST] = ["10.0.0.7"]
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
    assert deliveries_due_send() == {"retry": 1}
    # then: nothing was sent anywhere; the attempt says why
    assert len(http.calls) == 0
    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.error) == (None, "private_address")


@pytest.mark.django_db
def test_one_private_address_among_public_ones_is_refused(tenant, dns, http):
    _due(tenant)
    dns.table[HOOK_HOST] = [PUBLIC_IP, "127.0.0.1"]
    http.add(responses.POST, PINNED_URL, status=200)
    deliveries_due_send()
    assert len(http.calls) == 0
    assert WebhookAttempt.objects.get().error == "private_address"


@pytest.mark.django_db
def test_the_connection_goes_to_the_address_checked_not_a_second_lookup(tenant, dns, http):
    # given: a name that answers a public address, then (rebinding) a private one
    _due(tenant)
    dns.table[HOOK_HOST] = [[PUBLIC_IP], ["127.0.0.1"]]
    http.add(responses.POST, PINNED_URL, status=200)
    dns.asked.clear()
    # when
    assert deliveries_due_send() == {"succeeded": 1}
    # then: resolved once, and sent to that address with the name as Host
    assert dns.asked == [HOOK_HOST]
    (call,) = http.calls
    assert call.request.url == PINNED_URL
    assert call.request.headers["Host"] == HOOK_HOST


@pytest.mark.django_db
def test_an_ipv6_answer_is_pinned_in_brackets_with_the_port(tenant, dns, http):
    _due(tenant, url=f"https://{HOOK_HOST}:8443/in?x=1")
    dns.table[HOOK_HOST] = ["2606:2800:220:1:248:1893:25c8:1946"]
    http.add(responses.POST, "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/in?x=1")
    assert deliveries_due_send() == {"succeeded": 1}
    assert http.calls[0].request.headers["Host"] == f"{HOOK_HOST}:8443"


@pytest.mark.django_db
def test_redirects_are_not_followed(tenant, http):
    _due(tenant)
    http.add(
        responses.POST,
        PINNED_URL,
        status=302,
        headers={"Location": "http://169.254.169.254/latest/meta-data/"},
    )
    assert deliveries_due_send() == {"retry": 1}
    assert len(http.calls) == 1
    attempt = WebhookAttempt.objects.get()
    assert (attempt.status_code, attempt.error, attempt.succeeded) == (302, "redirect", False)


@pytest.mark.django_db
def test_private_addresses_when_the_deployment_allows_them(tenant, settings, dns, http):
    settings.OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = True
    dns.table["crm.internal"] = ["10.0.0.5"]
    endpoint, _ = webhook_endpoint_create(
        tenant=tenant, url="http://crm.internal:8080/hook", events=["thread.closed"]
    )
    http.add(responses.POST, "http://10.0.0.5:8080/hook", status=200)
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
    assert deliveries_due_send() == {"succeeded": 1}
    assert WebhookDelivery.objects.get().endpoint == endpoint
    # and switched back off, the same endpoint is refused at its next send
    settings.OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = False
    event_publish(tenant_id=tenant.pk, event="thread.closed", data={})
    assert deliveries_due_send() == {"retry": 1}
    assert WebhookAttempt.objects.order_by("created_at").last().error == "scheme"


# --- A real TLS connection to the pinned address (localhost only) ---------------------------


def _certificate(tmp_path, name: str):
    """A CA and a server certificate for `name` signed by it; returns (ca path, cert path,
    key path)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chatai test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 with a certificate for hooks.example.com; records the SNI
    and Host of each request."""
    ca, cert, key = _certificate(tmp_path, HOOK_HOST)
    seen: list[tuple[str | None, str | None]] = []
    sni: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((sni[-1] if sni else None, self.headers.get("Host")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], str(ca), seen
    server.shutdown()
    server.server_close()


def test_tls_goes_to_the_pinned_address_with_the_name_for_sni_and_the_certificate(
    tls_server, dns, settings
):
    port, ca, seen = tls_server
    settings.OUTBOUND_WEBHOOKS_ALLOW_PRIVATE = True  # the server is on loopback
    dns.table[HOOK_HOST] = ["127.0.0.1"]
    session = make_session()
    # when: posting to the name (resolved by the fake resolver only: no real DNS)
    response = session.post(f"https://{HOOK_HOST}:{port}/in", data=b"{}", verify=ca, timeout=5)
    # then: the certificate was checked against the name, SNI and Host carried it
    assert response.status_code == 204
    assert seen == [(HOOK_HOST, f"{HOOK_HOST}:{port}")]
    # and a name the certificate does not cover is refused, though the address is the same
    dns.table["other.example.com"] = ["127.0.0.1"]
    with pytest.raises(requests.exceptions.SSLError):
        session.post(f"https://other.example.com:{port}/in", data=b"{}", verify=ca, timeout=5)
