"""Fixtures for the fuzz suite: a simulator, a worker group per module and extra RabbitMQ users.

Everything is real: RabbitMQ on 127.0.0.1, the simulator over HTTP, `toksta-worker run` as a
subprocess with MAX_REQUEST_BYTES lowered to 4096 so oversized bodies stay cheap to publish. The
RabbitMQ users exist only for this package's run (created and deleted with `rabbitmqctl`), so
`user_id` namespaces can be exercised with connections that really authenticate as someone else.
"""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pika
import pytest

from worker.ops.harness import DEFAULT_AMQP_URL, Deployment, WorkerGroup
from worker.sim.testing import SimulatorProcess

TIME_SCALE = 0.05
MAX_REQUEST_BYTES = 4096


@dataclass(frozen=True)
class RabbitUser:
    name: str
    password: str

    def url(self) -> str:
        return f"amqp://{self.name}:{self.password}@127.0.0.1:5672/%2F"

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url()))


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="package")
def fuzz_sim() -> Iterator[SimulatorProcess]:
    """Short jobs and no rate limit: the valid requests mixed into the fuzz corpus finish fast."""
    args = ("--job-seconds", "0.5,1", "--rate-limit", "0", "--time-scale", str(TIME_SCALE))
    with SimulatorProcess(*args) as process:
        yield process


@pytest.fixture(scope="package")
def rabbit_users() -> Iterator[tuple[RabbitUser, RabbitUser]]:
    """Two throw-away RabbitMQ users with full rights on `/`; deleted afterwards."""
    tag = uuid.uuid4().hex[:8]
    users = (RabbitUser(f"fuzz_a_{tag}", secrets.token_hex(12)), RabbitUser(f"fuzz_b_{tag}", secrets.token_hex(12)))
    created: list[RabbitUser] = []
    try:
        for user in users:
            _rabbitmqctl("add_user", user.name, user.password)
            created.append(user)
            _rabbitmqctl("set_permissions", "-p", "/", user.name, ".*", ".*", ".*")
        yield users
    finally:
        for user in created:
            subprocess.run(["rabbitmqctl", "delete_user", user.name], check=False, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def fuzz_deployment(fuzz_sim: SimulatorProcess) -> Iterator[Deployment]:
    deployment = Deployment(
        base_url=fuzz_sim.base_url,
        api_key=fuzz_sim.key,
        amqp_url=DEFAULT_AMQP_URL,
        request_queue=f"fuzz.{uuid.uuid4().hex[:10]}.requests",
        time_scale=TIME_SCALE,
        extra_env={"MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES), "ADMISSION_WINDOW": "64"},
    )
    yield deployment
    deployment.delete_queues()


@pytest.fixture(scope="module")
def fuzz_worker(fuzz_deployment: Deployment) -> Iterator[WorkerGroup]:
    group = WorkerGroup(fuzz_deployment, processes=2, threads=4)
    group.start()
    yield group
    group.stop()
