"""The chaos run's private services: ports they can get back after a restart, and failures that say why.

A full chaos run once failed with "RabbitMQ node ... not within 90 s" after a restart, and the node's
log had gone with its directory. The private services now listen below the kernel's ephemeral range
(a port in it can become the local end of an outgoing connection while the service is down), and a
node that does not come up quotes its log's first errors in the error.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from worker.ops.chaos import PRIVATE_PORT_MIN, PrivateRabbit, free_port


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_free_ports_are_below_the_ephemeral_range_and_free() -> None:
    ports = [free_port() for _ in range(50)]
    assert all(PRIVATE_PORT_MIN <= port < _ephemeral_low() for port in ports), ports
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if it was not free


@pytest.mark.skipif(shutil.which("rabbitmq-server") is None, reason="rabbitmq-server is not installed")
def test_a_node_that_cannot_listen_fails_with_its_log() -> None:
    """The node's port is taken (bound, not listening: as by an outgoing connection's local end): the
    start fails within its timeout, and the error quotes the node's log, where RabbitMQ names the
    address in use, rather than only the timeout."""
    rabbit = PrivateRabbit()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", rabbit.port))
        try:
            with pytest.raises(TimeoutError) as failure:
                rabbit.start(timeout=20)
        finally:
            rabbit.close()
    message = str(failure.value)
    assert f"on port {rabbit.port}: not within 20" in message
    assert "from its log:" in message
    assert "eaddrinuse" in message.lower(), message
