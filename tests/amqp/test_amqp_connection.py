"""Connections: names visible to the broker, masked passwords, explicit errors."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

import pytest

from worker.amqp.connection import AmqpUnavailable, connection_parameters, open_connection, safe_url

if TYPE_CHECKING:
    from tests.rabbit_fixtures import Rabbit


def test_safe_url_masks_the_password() -> None:
    assert safe_url("amqp://user:s3cret@rabbit:5672/%2F") == "amqp://user:***@rabbit:5672/%2F"
    assert safe_url("amqps://user:s3cret@rabbit/vh?heartbeat=5") == "amqps://user:***@rabbit/vh?heartbeat=5"
    assert safe_url("amqp://rabbit:5672/") == "amqp://rabbit:5672/"


def test_url_query_values_win_over_defaults() -> None:
    params = connection_parameters("amqp://u:p@h:5672/%2F?heartbeat=7", name="n", heartbeat=30)
    assert params.heartbeat == 7
    assert params.blocked_connection_timeout == 60
    assert params.client_properties["connection_name"].startswith("n ")


def test_unreachable_broker_raises_without_the_password() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(AmqpUnavailable) as caught:
        open_connection(f"amqp://guest:topsecret@127.0.0.1:{port}/%2F", name="test unreachable")
    assert "topsecret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_wrong_password_raises_without_the_password(amqp_url: str) -> None:
    with pytest.raises(AmqpUnavailable) as caught:
        open_connection("amqp://guest:wrong-topsecret@127.0.0.1:5672/%2F", name="test auth")
    assert "wrong-topsecret" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_connection_is_named(amqp_url: str, rabbit: Rabbit) -> None:
    connection = open_connection(amqp_url, name="test-named-connection-4711")
    try:
        expected = f'{{"connection_name","test-named-connection-4711 (pid {os.getpid()})"}}'
        assert any(expected in properties for _pid, properties in rabbit.connections())
    finally:
        connection.close()
