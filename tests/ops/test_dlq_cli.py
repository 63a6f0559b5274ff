"""`toksta-worker dlq` through `add_arguments` / `run`, with settings from the environment."""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import TYPE_CHECKING

import pika
import pytest

from worker.amqp.publisher import Publisher
from worker.amqp.topology import Topology
from worker.ops import dlq, dlq_cli

if TYPE_CHECKING:
    from tests.rabbit_fixtures import Rabbit


@pytest.fixture(autouse=True)
def settings_env(monkeypatch: pytest.MonkeyPatch, amqp_url: str, topology: Topology) -> None:
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("REQUEST_QUEUE", topology.request_queue)


def cli(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="toksta-worker dlq")
    dlq_cli.add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = dlq_cli.run(parser.parse_args(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def fill(publisher: Publisher, reasons: list[str]) -> None:
    for n, reason in enumerate(reasons):
        body = json.dumps({"request_id": f"req-{n}", "kind": "enrichment", "params": {}}).encode()
        properties = pika.BasicProperties(content_type="application/json", message_id=f"m-{n}")
        publisher.dead_letter(body, properties, reason=reason, error=f"bad thing {n}\nline two", deliveries=n)


def test_list_table_and_json(publisher: Publisher, conn: pika.BlockingConnection, topology: Topology) -> None:
    fill(publisher, ["invalid_request", "poison"])
    code, out, _err = cli("list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "AGE", "REASON", "KIND", "REQUEST_ID", "DELIV", "ERROR"]
    assert "invalid_request" in lines[1] and "req-0" in lines[1] and "bad thing 0 line two" in lines[1]
    assert lines[-1] == "2 message(s)"

    code, out, _err = cli("list", "--json", "--reason", "poison")
    assert code == 0
    [row] = json.loads(out)
    assert (row["reason"], row["request_id"], row["deliveries"], row["message_id"]) == (
        "poison",
        "req-1",
        1,
        "m-1",
    )
    assert len(dlq.list_messages(conn, topology.dlq)) == 2


def test_show_prints_body_properties_and_headers(
    publisher: Publisher, conn: pika.BlockingConnection, topology: Topology
) -> None:
    fill(publisher, ["poison"])
    [letter] = dlq.list_messages(conn, topology.dlq)
    code, out, _err = cli("show", letter.id)
    assert code == 0
    assert f"id: {letter.id}" in out and "content_type: application/json" in out
    assert "x-reject-reason: poison" in out and '"request_id": "req-0"' in out
    code, out, _err = cli("show", letter.id, "--json")
    assert json.loads(out)["body"]["request_id"] == "req-0"
    code, _out, err = cli("show", "missing-id")
    assert code == 1 and "missing-id" in err


def test_replay_by_id_and_argument_checks(
    publisher: Publisher, conn: pika.BlockingConnection, topology: Topology, rabbit: Rabbit
) -> None:
    fill(publisher, ["poison", "poison"])
    first, second = dlq.list_messages(conn, topology.dlq)
    code, out, _err = cli("replay", second.id)
    assert code == 0 and f"replayed {second.id}" in out
    assert rabbit.count(topology.request_queue) == 1
    assert [letter.id for letter in dlq.list_messages(conn, topology.dlq)] == [first.id]
    assert cli("replay")[0] == 2
    assert cli("replay", first.id, "--all")[0] == 2
    code, _out, err = cli("replay", "unknown-id")
    assert code == 1 and "not found unknown-id" in err


def test_replay_unroutable_left_in_place_when_its_queue_is_missing(
    publisher: Publisher, topology: Topology, rabbit: Rabbit
) -> None:
    publisher.publish_reply("test.nobody.listens.here", b"{}", pika.BasicProperties())
    code, _out, err = cli("replay", "--all", "--unroutable")
    assert code == 1 and "does not exist" in err
    assert rabbit.count(topology.unroutable) == 1
    code, out, _err = cli("list", "--unroutable")
    assert "ROUTING_KEY" in out and "test.nobody.listens.here" in out


def test_purge_refuses_without_yes_when_not_a_terminal(
    publisher: Publisher, topology: Topology, rabbit: Rabbit, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(publisher, ["poison", "invalid_json", "poison"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # pytest's stdin may be anything; make it a pipe
    code, _out, err = cli("purge")
    assert code == 2 and "--yes" in err
    assert rabbit.count(topology.dlq) == 3
    code, out, _err = cli("purge", "--reason", "poison", "--yes")
    assert code == 0 and "purged 2" in out
    assert [letter.reason for letter in dlq.list_messages(rabbit.conn, topology.dlq)] == ["invalid_json"]


class FakeTerminal(io.StringIO):
    """Stands in for an interactive terminal, which a test run does not have."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "left"), [("y\n", 0, 0), ("n\n", 2, 2)])
def test_purge_asks_on_a_terminal(
    publisher: Publisher,
    topology: Topology,
    rabbit: Rabbit,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    left: int,
) -> None:
    fill(publisher, ["poison", "poison"])
    monkeypatch.setattr(sys, "stdin", FakeTerminal(answer))
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # input() writes its prompt there
    assert cli("purge")[0] == code
    assert rabbit.count(topology.dlq) == left


def test_unavailable_broker_is_reported_without_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://guest:topsecret@127.0.0.1:1/%2F")
    code, _out, err = cli("list")
    assert code == 1 and "topsecret" not in err and "***" in err
