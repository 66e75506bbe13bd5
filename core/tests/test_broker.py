"""The broker transport publishes through one Redis client per channel (core/broker.py)."""

import pytest
from kombu import Connection
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

import chatai.celery  # noqa: F401 - registers the transport
from core import broker

URL = "redis://127.0.0.1:6379/14"


def _redis_up() -> bool:
    try:
        return bool(Redis.from_url(URL, socket_connect_timeout=0.5).ping())
    except RedisConnectionError:
        return False


def test_redis_urls_resolve_to_our_transport() -> None:
    assert Connection(URL).get_transport_cls() is broker.Transport
    assert Connection(URL.replace("redis:", "rediss:")).get_transport_cls() is broker.Transport


@pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379")
def test_publishes_share_one_client_and_deliver() -> None:
    # given: a channel of the broker connection
    with Connection(URL) as connection:
        channel = connection.default_channel
        assert isinstance(channel, broker.Channel)
        queue = connection.SimpleQueue("chatai-broker-test")
        queue.clear()
        try:
            # when: three messages are published
            for number in range(3):
                queue.put({"n": number})
            # then: one client built for publishing, and every message arrives in order
            first = channel._create_client()
            assert channel._create_client() is first
            got = [queue.get(timeout=2) for _ in range(3)]
            assert [message.payload["n"] for message in got] == [0, 1, 2]
            for message in got:
                message.ack()
        finally:
            queue.clear()
            queue.close()
