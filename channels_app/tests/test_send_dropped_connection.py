"""A connection that drops after the provider read the whole request: the message may have
been accepted, so it is never sent again (both providers, the real HTTP clients)."""

import socket
import threading

import pytest

from channels_app.providers import AmbiguousSendError, OutboundPayload, get_provider
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider_that_hangs_up():
    """A local server that reads each request in full, then closes without answering."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    requests_seen = []

    def serve():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                requests_seen.append(connection.recv(65536).split(b"\r\n", 1)[0])

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", requests_seen
    server.close()


@pytest.mark.parametrize("provider", ["twilio", "cloud_api"])
def test_a_connection_dropped_after_the_request_is_ambiguous(
    tenant, provider_that_hangs_up, provider
):
    # given: a channel (with its own credentials) pointed at a provider that hangs up
    base, requests_seen = provider_that_hangs_up
    if provider == "twilio":
        channel = factories.TwilioChannelFactory(tenant=tenant, settings={"api_base_url": base})
    else:
        channel = factories.CloudChannelFactory(
            tenant=tenant, settings={"phone_number_id": "999", "api_base_url": base}
        )

    # when / then: the request arrived, and the error says it may have been accepted
    with pytest.raises(AmbiguousSendError):
        get_provider(channel).send(
            channel=channel, payload=OutboundPayload(to_phone="+15551230000", text="hello")
        )
    assert len(requests_seen) == 1 and requests_seen[0].startswith(b"POST ")
