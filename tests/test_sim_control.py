"""The simulator's HTTP control endpoint and the ``smppgw sim`` command line."""

from __future__ import annotations

import json
from functools import partial

import pytest
import trio
from test_sim_smsc import connect, running

from smppgw.cli import main
from smppgw.protocol.pdus import SubmitSm
from smppgw.sim import FaultError, Faults, serve_control
from smppgw.sim.cli import add_commands, sim_config
from smppgw.sim.control import request_json


async def test_control_routes() -> None:
    async with running() as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        port = await nursery.start(serve_control, sim)
        esme, _ = await connect(nursery, sim.port)
        status, body = await request_json("127.0.0.1", port, "GET", "/stats")
        assert status == 200
        assert body["binds_ok"] == 1
        assert body["faults"]["throttle_every"] == 0

        status, body = await request_json(
            "127.0.0.1", port, "POST", "/mo", {"from": "84912345678", "to": "8055", "text": "TD X"}
        )
        assert (status, body) == (200, {"parts": 1})
        (mo,) = await esme.wait_for(1)
        assert mo.short_message == b"TD X"

        batch = {"from": "8491{i:07d}", "to": "8055", "text": "TD C{i:03d}", "count": 3}
        status, body = await request_json("127.0.0.1", port, "POST", "/mo", batch)
        assert (status, body) == (200, {"parts": 3})
        delivered = await esme.wait_for(4)
        assert [(m.source_addr, m.short_message) for m in delivered[1:]] == [
            ("84910000000", b"TD C000"),
            ("84910000001", b"TD C001"),
            ("84910000002", b"TD C002"),
        ]
        status, body = await request_json("127.0.0.1", port, "POST", "/mo", {**batch, "count": 0})
        assert status == 400

        status, body = await request_json("127.0.0.1", port, "GET", "/messages?last=5")
        assert (status, body) == (200, {"messages": []})  # nothing submitted to it yet
        for n in range(3):
            await esme.link.request(
                SubmitSm(
                    source_addr="8055",
                    destination_addr="84912345678",
                    short_message=f"reply {n}".encode(),
                )
            )
        status, body = await request_json("127.0.0.1", port, "GET", "/messages?last=2")
        assert [m["text"] for m in body["messages"]] == ["reply 1", "reply 2"]

        status, body = await request_json(
            "127.0.0.1", port, "POST", "/faults", {"throttle_every": 3, "response_delay": 0.5}
        )
        assert status == 200
        assert body["throttle_every"] == 3
        assert sim.faults.response_delay == 0.5
        status, body = await request_json(
            "127.0.0.1", port, "POST", "/faults", {"throttle_every": -1, "refuse_binds": True}
        )
        assert status == 400
        assert "throttle_every" in body["error"]
        assert sim.faults.refuse_binds is False  # refused whole
        status, _ = await request_json("127.0.0.1", port, "POST", "/mo", {"from": "1"})
        assert status == 400
        status, _ = await request_json("127.0.0.1", port, "GET", "/mo")
        assert status == 405
        status, _ = await request_json("127.0.0.1", port, "GET", "/nowhere")
        assert status == 404
        nursery.cancel_scope.cancel()


async def test_control_rejects_bad_json_and_slow_clients() -> None:
    async with running() as sim, trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_control, sim, request_timeout=0.2))
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            await stream.send_all(b"POST /faults HTTP/1.1\r\nContent-Length: 5\r\n\r\n[1,2]")
            answer = await stream.receive_some(4096)
        assert answer.startswith(b"HTTP/1.1 400 ")
        async with await trio.open_tcp_stream("127.0.0.1", port) as slow:
            await slow.send_all(b"GET /stats HTTP/1.1\r\n")
            with trio.fail_after(2):
                answer = await slow.receive_some(4096)
        assert answer.startswith(b"HTTP/1.1 408 ")
        nursery.cancel_scope.cancel()


def test_faults_update_is_all_or_nothing() -> None:
    faults = Faults()
    with pytest.raises(FaultError, match="unknown fault"):
        faults.update({"drop_after": 3, "explode": True})
    assert faults.drop_after == 0
    with pytest.raises(FaultError):
        faults.update({"never_answer": 1})
    faults.update({"queue_full_every": 2, "ignore_enquire_link": True})
    assert [faults.next_submit_status() for _ in range(4)] == [0, 0x14, 0, 0x14]
    faults.update({"throttle_every": 2})  # counting restarts
    assert [faults.next_submit_status() for _ in range(2)] == [0, 0x58]
    assert faults.to_dict()["ignore_enquire_link"] is True
    assert "counted" not in faults.to_dict()


def test_sim_arguments() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(
        [
            "sim",
            "--listen",
            "0.0.0.0:3000",
            "--account",
            "a:pw",
            "--account",
            "b:pw2",
            "--id-format",
            "decimal",
            "--receipt-delay-ms",
            "250",
            "--outcomes",
            "DELIVRD=90,UNDELIV=10",
            "--throttle-every",
            "5",
        ]
    )
    config = sim_config(args)
    assert args.listen == ("0.0.0.0", 3000)
    assert [a.system_id for a in config.accounts] == ["a", "b"]
    assert config.id_format == "decimal"
    assert config.receipt_delay == 0.25
    assert config.outcomes == {"DELIVRD": 90.0, "UNDELIV": 10.0}
    assert args.throttle_every == 5
    with pytest.raises(SystemExit):
        parser.parse_args(["sim", "--listen", "nowhere"])


async def test_cli_posts_mo_and_faults_to_a_running_simulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running() as sim, trio.open_nursery() as nursery:
        assert sim.port is not None
        port = await nursery.start(serve_control, sim)
        esme, _ = await connect(nursery, sim.port)
        control = f"127.0.0.1:{port}"
        argv = ["sim", "mo", "--control", control, "--from", "849", "--to", "8055", "--text", "TD"]
        assert await trio.to_thread.run_sync(main, argv) == 0
        (mo,) = await esme.wait_for(1)
        assert (mo.source_addr, mo.short_message) == ("849", b"TD")
        argv = ["sim", "faults", "--control", control, "--set", "drop_after=7"]
        assert await trio.to_thread.run_sync(main, argv) == 0
        assert sim.faults.drop_after == 7
        assert await trio.to_thread.run_sync(main, ["sim", "stats", "--control", control]) == 0
        out = capsys.readouterr().out
        assert json.loads(out[out.rindex("\n{\n") + 1 :])["mo_sent"] == 1
        nursery.cancel_scope.cancel()
