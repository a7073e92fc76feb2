"""``smppgw sim ...`` and ``smppgw loadgen ...``: the argparse wiring.

Heavy imports (trio, the simulator, pydantic for logging settings) happen inside the
handlers, so ``smppgw --help`` stays fast.

Usage::

    smppgw sim --listen 127.0.0.1:2776 --account smppgw:smppgw --id-format hex \\
        --receipt-delay-ms 200 --outcomes DELIVRD=90,UNDELIV=10 --control 127.0.0.1:2777
    smppgw sim mo --control 127.0.0.1:2777 --from 84912345678 --to 8055 --text "TD ABC123"
    smppgw sim faults --control 127.0.0.1:2777 --set throttle_every=10
    smppgw sim stats --control 127.0.0.1:2777
    smppgw loadgen --host 127.0.0.1 --port 2776 --system-id smppgw --password smppgw \\
        --count 20000 --window 64 --sessions 4 --receipts --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smppgw.sim.smsc import SimConfig

__all__ = ["add_commands"]


def _endpoint(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _outcomes(value: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in value.split(","):
        name, sep, weight = item.partition("=")
        try:
            out[name.strip().upper()] = float(weight) if sep else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad outcome weight in {item!r}") from None
    return out


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sim`` (with ``mo``, ``faults``, ``stats``) and ``loadgen``."""
    sim = commands.add_parser(
        "sim",
        help="run the built-in SMSC simulator (or drive a running one)",
        description="Run a simulated SMSC until Ctrl-C/SIGTERM.",
    )
    sim.add_argument("--listen", type=_endpoint, default=("127.0.0.1", 2776), metavar="HOST:PORT")
    sim.add_argument(
        "--account",
        action="append",
        metavar="ID:PASSWORD",
        help="repeatable; default smppgw:smppgw",
    )
    sim.add_argument("--id-format", choices=("hex", "decimal"), default="hex")
    sim.add_argument("--id-width", type=int, default=0, help="pad ids with leading zeros")
    sim.add_argument("--receipt-delay-ms", type=float, default=50.0)
    sim.add_argument("--outcomes", type=_outcomes, default={"DELIVRD": 1.0}, metavar="W")
    sim.add_argument("--seed", type=int, default=None, help="seed of the outcome RNG")
    sim.add_argument("--window", type=int, default=64, help="deliver_sm window per session")
    sim.add_argument("--control", type=_endpoint, metavar="HOST:PORT", help="HTTP control")
    sim.add_argument(
        "--record",
        type=int,
        default=10_000,
        metavar="N",
        help="submits (and receipts, MO, binds) kept for GET /messages and /submits",
    )
    sim.add_argument("--throttle-every", type=int, default=0, metavar="N")
    sim.add_argument("--queue-full-every", type=int, default=0, metavar="M")
    sim.add_argument("--response-delay-ms", type=float, default=0.0)
    sim.add_argument("--drop-after", type=int, default=0, metavar="N")
    sim.add_argument("--refuse-binds", action="store_true")
    sim.add_argument("--ignore-enquire-link", action="store_true")
    sim.add_argument("--never-answer", action="store_true")
    sim.add_argument("--mo-rate", type=float, default=None, help="generate MO per second")
    sim.add_argument("--mo-count", type=int, default=None)
    sim.add_argument("--mo-from", action="append", help="repeatable MO source numbers")
    sim.add_argument("--mo-to", action="append", help="repeatable MO destinations")
    sim.add_argument("--mo-text", action="append", help="repeatable MO texts")
    sim.add_argument("--log-level", default="info")
    sim.set_defaults(handler=_run_sim)
    actions = sim.add_subparsers(title="actions on a running simulator", metavar="ACTION")

    mo = actions.add_parser("mo", help="inject an MO through the control endpoint")
    _control_arg(mo)
    mo.add_argument("--from", dest="mo_source", required=True)
    mo.add_argument("--to", dest="mo_destination", required=True)
    mo.add_argument("--text", dest="mo_body", required=True)
    mo.add_argument("--data-coding", type=int, default=None)
    mo.add_argument("--system-id", dest="mo_system_id", default=None)
    mo.add_argument(
        "--ussd-session", type=int, default=None, help="send it as USSD in this session number"
    )
    mo.set_defaults(handler=_post_mo)

    faults = actions.add_parser("faults", help="show or change faults (--set name=value)")
    _control_arg(faults)
    faults.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    faults.set_defaults(handler=_faults)

    stats = actions.add_parser("stats", help="print the simulator's statistics")
    _control_arg(stats)
    stats.set_defaults(handler=_stats)

    messages = actions.add_parser(
        "messages", help="the last messages the simulator received (decoded), newest last"
    )
    _control_arg(messages)
    messages.add_argument("--last", type=int, default=10)
    messages.set_defaults(handler=_messages)

    load = commands.add_parser("loadgen", help="load an SMPP server as a partner would")
    load.add_argument("--host", default="127.0.0.1")
    load.add_argument("--port", type=int, default=2776)
    load.add_argument("--system-id", default="smppgw")
    load.add_argument("--password", default="smppgw")
    load.add_argument("--count", type=int, default=1000)
    load.add_argument("--window", type=int, default=64)
    load.add_argument("--sessions", type=int, default=1)
    load.add_argument("--rate", type=float, default=None, help="messages/s (default: max)")
    load.add_argument("--bind", choices=("trx", "tx+rx"), default="trx")
    load.add_argument(
        "--timeline",
        type=Path,
        default=None,
        metavar="FILE",
        help="write per-interval counts and latency percentiles as JSON lines",
    )
    load.add_argument("--timeline-interval", type=float, default=1.0, metavar="SECONDS")
    load.add_argument("--receipts", action="store_true", help="ask for and await receipts")
    load.add_argument("--receipt-timeout", type=float, default=30.0)
    load.add_argument("--retry-throttled", action="store_true")
    load.add_argument("--text", default="smppgw load test")
    load.add_argument("--source", default="8055")
    load.add_argument("--destination", action="append", help="repeatable")
    load.add_argument("--json", action="store_true", help="print the summary as JSON")
    load.add_argument("--log-level", default="warning")
    load.set_defaults(handler=_run_loadgen)


def _control_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--control",
        dest="control_endpoint",
        type=_endpoint,
        default=("127.0.0.1", 2777),
        metavar="HOST:PORT",
    )


def _configure_logging(level: str) -> None:
    from smppgw.app.config_models import LoggingSettings
    from smppgw.app.logs import configure_logging

    configure_logging(LoggingSettings.model_validate({"level": level, "format": "console"}))


def sim_config(args: argparse.Namespace) -> SimConfig:
    """The :class:`SimConfig` the ``sim`` arguments describe."""
    from smppgw.sim.smsc import Account, SimConfig

    accounts = []
    for item in args.account or ["smppgw:smppgw"]:
        system_id, sep, password = item.partition(":")
        if not sep or not system_id:
            raise SystemExit(f"--account wants ID:PASSWORD, got {item!r}")
        accounts.append(Account(system_id, password))
    return SimConfig(
        accounts=tuple(accounts),
        id_format=args.id_format,
        id_width=args.id_width,
        receipt_delay=args.receipt_delay_ms / 1000.0,
        outcomes=args.outcomes,
        seed=args.seed,
        window=args.window,
        max_records=max(1, args.record),
    )


def _run_sim(args: argparse.Namespace) -> int:
    import trio

    from smppgw.sim.faults import Faults

    _configure_logging(args.log_level)
    faults = Faults(
        throttle_every=args.throttle_every,
        queue_full_every=args.queue_full_every,
        response_delay=args.response_delay_ms / 1000.0,
        drop_after=args.drop_after,
        refuse_binds=args.refuse_binds,
        ignore_enquire_link=args.ignore_enquire_link,
        never_answer=args.never_answer,
    )
    try:
        config = sim_config(args)
        trio.run(_sim_main, args, config, faults)
    except ValueError as exc:
        print(f"smppgw sim: {exc}", file=sys.stderr)
        return 2
    return 0


async def _sim_main(args: argparse.Namespace, config: SimConfig, faults: Any) -> None:
    import signal
    from functools import partial

    import trio

    from smppgw.sim.control import serve_control
    from smppgw.sim.mo import generate_mo
    from smppgw.sim.smsc import SimulatedSmsc

    sim = SimulatedSmsc(config, faults=faults)
    host, port = args.listen
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(sim.run, host=host, port=port))
            if args.control is not None:
                await nursery.start(serve_control, sim, *args.control)
            if args.mo_rate:

                async def mo_generator() -> None:
                    await generate_mo(
                        sim.inject_mo,
                        rate=args.mo_rate,
                        count=args.mo_count,
                        sources=args.mo_from or [config.mo_source],
                        destinations=args.mo_to or [config.mo_short_code],
                        texts=args.mo_text or ["TD ABC123"],
                    )

                nursery.start_soon(mo_generator)
            async for _signal in signals:
                nursery.cancel_scope.cancel()
                break


def _call_control(args: argparse.Namespace, method: str, path: str, payload: Any = None) -> int:
    import trio

    from smppgw.sim.control import request_json

    host, port = args.control_endpoint

    async def call() -> tuple[int, Any]:
        with trio.fail_after(10):
            return await request_json(host, port, method, path, payload)

    try:
        status, body = trio.run(call)
    except (OSError, trio.TooSlowError) as exc:
        print(f"cannot reach the simulator at {host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2, sort_keys=True))
    return 0 if status == 200 else 1


def _post_mo(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {
        "from": args.mo_source,
        "to": args.mo_destination,
        "text": args.mo_body,
    }
    if args.data_coding is not None:
        payload["data_coding"] = args.data_coding
    if args.mo_system_id is not None:
        payload["system_id"] = args.mo_system_id
    if args.ussd_session is not None:
        payload["ussd_session"] = args.ussd_session
    return _call_control(args, "POST", "/mo", payload)


def _messages(args: argparse.Namespace) -> int:
    return _call_control(args, "GET", f"/messages?last={max(1, min(args.last, 1000))}")


def _faults(args: argparse.Namespace) -> int:
    if not args.set:
        return _call_control(args, "GET", "/faults")
    changes: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"--set wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        try:
            changes[name] = json.loads(value)
        except ValueError:
            changes[name] = value
    return _call_control(args, "POST", "/faults", changes)


def _stats(args: argparse.Namespace) -> int:
    return _call_control(args, "GET", "/stats")


def _run_loadgen(args: argparse.Namespace) -> int:
    import trio

    from smppgw.sim.loadgen import LoadError, run_load

    _configure_logging(args.log_level)

    async def main() -> Any:
        return await run_load(
            args.host,
            args.port,
            system_id=args.system_id,
            password=args.password,
            sessions=args.sessions,
            window=args.window,
            count=args.count,
            rate=args.rate,
            registered_delivery=args.receipts,
            wait_receipts_timeout=args.receipt_timeout,
            text=args.text,
            source=args.source,
            destinations=args.destination or ["84912345678"],
            bind=args.bind,
            retry_throttled=args.retry_throttled,
            timeline=args.timeline,
            timeline_interval=args.timeline_interval,
        )

    try:
        summary = trio.run(main)
    except LoadError as exc:
        print(f"smppgw loadgen: {exc}", file=sys.stderr)
        return 1
    print(summary.to_json() if args.json else summary.to_table())
    return 0
