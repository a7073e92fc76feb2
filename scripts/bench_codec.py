"""Encode and decode rates of the smppgw codec, beside python-smpplib's, in one run.

Three realistic PDUs:

- ``submit_sm``: alphanumeric source, 11-digit destination, ``registered_delivery`` 1,
  a 100-octet text;
- ``submit_sm_resp``: a 16-character ``message_id``;
- ``deliver_sm``: a delivery receipt (``esm_class`` 0x04, the usual receipt text,
  ``message_state`` and ``receipted_message_id`` TLVs).

What is timed, per PDU (both libraries do the same work, checked before timing: the
two encoders must produce the same octets, and each decoder reads the other's output):

- ``encode``: a PDU object already built, to bytes (ours: ``encode_pdu``; smpplib:
  ``.generate()`` on a command object made once);
- ``build+enc``: from field values to bytes, building the object every time (ours: the
  frozen dataclass and ``encode_pdu``; smpplib: ``make_pdu`` and ``.generate()``);
- ``decode``: from bytes to a PDU object (ours: ``decode_pdu``; smpplib: ``parse_pdu``).

Each rate is the best of ``--repeat`` runs of a loop sized to last about ``--min-time``
seconds (the best run is the one least disturbed by the machine). Prints a table, then
one JSON line with the ratios ours/smpplib. ``--check`` makes the exit status 1 when
``submit_sm`` misses the 10x target in any op. Usage::

    .venv/bin/python scripts/bench_codec.py [--repeat 5] [--min-time 0.15] [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from smpplib import smpp as smpplib_smpp

from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.pdus import DeliverSm, Pdu, SubmitSm, SubmitSmResp
from smppgw.protocol.tlv import Tag, Tlv

if TYPE_CHECKING:
    from collections.abc import Callable

TARGET_RATIO = 10.0

SUBMIT_TEXT = (
    b"Your verification code is 482913. It expires in 10 minutes. "
    b"Do not share it with anyone. -- MyShop"
)
RECEIPT_ID = "7f3c9a12b4e8d601"
RECEIPT_TEXT = (
    f"id:{RECEIPT_ID} sub:001 dlvrd:001 submit date:2611251200 done date:2611251201 "
    "stat:DELIVRD err:000 text:Your verification"
).encode("ascii")


class _Client:
    """The little smpplib wants of a client object."""

    sequence = 0

    def next_sequence(self) -> int:
        return 1


_CLIENT = _Client()


class Case:
    """One PDU, as field values both libraries can build it from."""

    def __init__(
        self,
        name: str,
        ours: Callable[[], Pdu],
        smpplib_name: str,
        smpplib_values: dict[str, Any],
    ) -> None:
        self.name = name
        self.ours = ours
        self.smpplib_name = smpplib_name
        self.smpplib_values = smpplib_values
        self.pdu = ours()
        self.wire = encode_pdu(self.pdu)
        self.command = self._smpplib_command()

    def _smpplib_command(self) -> Any:
        command = smpplib_smpp.make_pdu(self.smpplib_name, client=_CLIENT, **self.smpplib_values)
        command.sequence = 7  # smpplib ignores sequence= in the constructor
        return command

    def encode_ours(self) -> bytes:
        return encode_pdu(self.pdu)

    def encode_smpplib(self) -> bytes:
        wire: bytes = self.command.generate()
        return wire

    def build_encode_ours(self) -> bytes:
        return encode_pdu(self.ours())

    def build_encode_smpplib(self) -> bytes:
        wire: bytes = self._smpplib_command().generate()
        return wire

    def decode_ours(self) -> Pdu:
        return decode_pdu(self.wire)

    def decode_smpplib(self) -> Any:
        return smpplib_smpp.parse_pdu(self.wire, client=_CLIENT)


def _cases() -> list[Case]:
    submit = {
        "source_addr_ton": 5,
        "source_addr_npi": 0,
        "source_addr": "MyShop",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": "84912345678",
        "registered_delivery": 1,
        "short_message": SUBMIT_TEXT,
    }
    receipt = {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": "84912345678",
        "dest_addr_ton": 5,
        "destination_addr": "MyShop",
        "esm_class": 0x04,
        "short_message": RECEIPT_TEXT,
    }
    receipt_tlvs = (
        Tlv(Tag.MESSAGE_STATE, b"\x02"),
        Tlv(Tag.RECEIPTED_MESSAGE_ID, RECEIPT_ID.encode("ascii") + b"\0"),
    )
    return [
        Case(
            "submit_sm",
            lambda: SubmitSm(sequence_number=7, **submit),  # type: ignore[arg-type]
            "submit_sm",
            submit,
        ),
        Case(
            "submit_sm_resp",
            lambda: SubmitSmResp(sequence_number=7, message_id=RECEIPT_ID),
            "submit_sm_resp",
            {"message_id": RECEIPT_ID},
        ),
        Case(
            "deliver_sm receipt",
            lambda: DeliverSm(sequence_number=7, tlvs=receipt_tlvs, **receipt),  # type: ignore[arg-type]
            "deliver_sm",
            {**receipt, "message_state": 2, "receipted_message_id": RECEIPT_ID},
        ),
    ]


def rate(fn: Callable[[], object], *, repeat: int, min_time: float) -> float:
    """Calls per second: the best of ``repeat`` loops of about ``min_time`` seconds each."""
    clock = time.perf_counter
    loops = 1
    while True:  # size the loop
        start = clock()
        for _ in range(loops):
            fn()
        elapsed = clock() - start
        if elapsed >= min_time / 4:
            break
        loops *= 4
    loops = max(1, int(loops * min_time / elapsed))
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        for _ in range(loops):
            fn()
        best = min(best, clock() - start)
    return loops / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="loops per measurement")
    parser.add_argument("--min-time", type=float, default=0.15, help="seconds per loop")
    parser.add_argument("--check", action="store_true", help="exit 1 if submit_sm < 10x")
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, float, float]] = []
    for case in _cases():
        # Same work on both sides: the two encoders agree octet for octet, and each
        # decoder reads the other's output.
        for wire in (case.encode_smpplib(), case.build_encode_smpplib(), case.encode_ours()):
            if wire != case.wire:
                raise SystemExit(f"{case.name}: smpplib and smppgw encode differently")
        if decode_pdu(case.wire) != case.pdu or case.decode_smpplib().sequence != 7:
            raise SystemExit(f"{case.name}: the decoders disagree")
        for op, ours_fn, theirs_fn in (
            ("encode", case.encode_ours, case.encode_smpplib),
            ("build+enc", case.build_encode_ours, case.build_encode_smpplib),
            ("decode", case.decode_ours, case.decode_smpplib),
        ):
            ours = rate(ours_fn, repeat=args.repeat, min_time=args.min_time)
            theirs = rate(theirs_fn, repeat=args.repeat, min_time=args.min_time)
            rows.append((case.name, op, ours, theirs))

    print(f"{'PDU':<20} {'op':<10} {'ours/s':>12} {'smpplib/s':>12} {'ratio':>7}")
    for name, op, ours, theirs in rows:
        print(f"{name:<20} {op:<10} {ours:>12,.0f} {theirs:>12,.0f} {ours / theirs:>6.1f}x")
    ratios = {f"{name} {op}": round(ours / theirs, 2) for name, op, ours, theirs in rows}
    print(json.dumps({"bench": "codec", "ratios": ratios, "target": TARGET_RATIO}))

    missed = [
        key
        for key, value in ratios.items()
        if key.startswith("submit_sm ") and value < TARGET_RATIO
    ]
    if missed:
        print(f"below the {TARGET_RATIO:g}x target: {', '.join(missed)}", file=sys.stderr)
        return 1 if args.check else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
