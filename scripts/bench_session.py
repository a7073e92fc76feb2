"""Benchmark: the protocol core's cost of one message, beside the codec's share of it.

What a message costs the sans-I/O core on each side of a gateway, with no I/O and no
event loop: an ESME ``SmppConnection`` sends a ``submit_sm`` (``send_request``), an
SMSC ``SmppConnection`` reads it (``receive_data`` + ``next_event``), answers it
(``make_response`` + ``send``), and the ESME reads the answer (its ``ResponseReceived``).
That is the work of every message twice in the gateway (partner side in, carrier side
out), on top of which the trio layer, admission and the journal come. Timed in batches
of ``--window`` messages (the way a loaded link reads and writes them), beside the bare
codec work of the same four PDUs (encode and decode, nothing else): the difference is
the session's own bookkeeping (state machine, window, sequence numbers, timers).

Each figure is the best of ``--repeat`` runs (the run least disturbed by the machine).
Prints a table and one JSON line. Usage::

    .venv/bin/python scripts/bench_session.py [--repeat 7] [--messages 20000] [--window 64]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.events import ResponseReceived
from smppgw.protocol.pdus import BindTransceiver, SubmitSm, SubmitSmResp
from smppgw.protocol.session import NEED_DATA, SmppConnection, make_response
from smppgw.protocol.states import Role

if TYPE_CHECKING:
    from collections.abc import Callable

SUBMIT = SubmitSm(
    source_addr="MyShop",
    source_addr_ton=5,
    destination_addr="84912345678",
    dest_addr_ton=1,
    dest_addr_npi=1,
    registered_delivery=1,
    short_message=b"Your verification code is 482913. It expires in 10 minutes.",
)


def _bound_pair(window: int) -> tuple[SmppConnection, SmppConnection]:
    esme = SmppConnection(Role.ESME, window=window, enquire_link_interval=30.0)
    smsc = SmppConnection(Role.SMSC, window=window, enquire_link_interval=30.0)
    _, data = esme.send_request(BindTransceiver(system_id="a", password="b"), 0.0)
    smsc.receive_data(data, 0.0)
    bind = smsc.next_event()
    assert isinstance(bind, BindTransceiver)
    esme.receive_data(smsc.send(make_response(bind, system_id="S"), 0.0), 0.0)
    assert isinstance(esme.next_event(), ResponseReceived)
    return esme, smsc


def session_run(messages: int, window: int) -> float:
    """Seconds for ``messages`` submits and answers through a bound pair."""
    esme, smsc = _bound_pair(window)
    now = 1.0
    start = time.perf_counter()
    for _ in range(messages // window):
        out = [esme.send_request(SUBMIT, now)[1] for _ in range(window)]
        smsc.receive_data(b"".join(out), now)
        answers = []
        while (event := smsc.next_event()) is not NEED_DATA:
            assert isinstance(event, SubmitSm)
            answers.append(smsc.send(make_response(event, message_id="1A2B3C4D"), now))
        esme.receive_data(b"".join(answers), now)
        while (event := esme.next_event()) is not NEED_DATA:
            assert isinstance(event, ResponseReceived)
    return time.perf_counter() - start


def codec_run(messages: int, window: int) -> float:
    """Seconds for the codec work alone of the same PDUs."""
    start = time.perf_counter()
    for _ in range(messages // window):
        for seq in range(1, window + 1):
            submit = decode_pdu(encode_pdu(SUBMIT, sequence_number=seq))
            assert isinstance(submit, SubmitSm)
            answer = SubmitSmResp(sequence_number=seq, message_id="1A2B3C4D")
            decode_pdu(encode_pdu(answer))
    return time.perf_counter() - start


def best(run: Callable[[int, int], float], repeat: int, messages: int, window: int) -> float:
    return min(run(messages, window) for _ in range(repeat))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args(argv)
    messages = args.messages - args.messages % args.window
    session = best(session_run, args.repeat, messages, args.window) / messages * 1e6
    codec = best(codec_run, args.repeat, messages, args.window) / messages * 1e6
    print(f"{'what':<34} {'us/message':>10}")
    print(f"{'session pair (4 PDUs)':<34} {session:>10.2f}")
    print(f"{'  of which codec (encode+decode)':<34} {codec:>10.2f}")
    print(f"{'  session bookkeeping':<34} {session - codec:>10.2f}")
    result = {
        "bench": "session",
        "window": args.window,
        "session_us_per_message": round(session, 2),
        "codec_us_per_message": round(codec, 2),
        "bookkeeping_us_per_message": round(session - codec, 2),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
