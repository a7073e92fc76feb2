"""Fuzzing the carrier side: the gateway's ``CarrierClient`` binds to a hostile SMSC.

Each hypothesis example journals a batch of messages, then lets the client connect to
one port where the first connections meet a hostile SMSC (a plain trio TCP server in
this file) and the later ones the sane ``FakeSmsc`` of ``carrier_fixtures``. A hostile
connection answers the bind (well, with an error, with the wrong sequence number, with
garbage, or not at all), then plays a ``fuzz_streams`` stream (garbage, truncated and
mis-sized PDUs, unsolicited responses, receipts whose text or ids are wrong, huge
``command_length``, slow chunks, resets) while it answers the client's ``submit_sm``
never, with a sequence number that matches nothing, or with ``ESME_RTHROTTLED``.
What must hold:

- the client never crashes (its task would fail the test's nursery) and reconnects with
  backoff (no two connections closer than the initial delay);
- no journaled message is lost: once the sane SMSC is up every message reaches it and
  ends ``sent`` in the journal;
- memory bounded: the client's links keep their unsent output and framer buffers under
  their bounds, the process's RSS growth is bounded.

``SMPPGW_FUZZ_EXAMPLES`` sets the number of examples (a few in CI).
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import pytest
import trio
from carrier_fixtures import FakeSmsc, store_states, wait_for
from fuzz_streams import HostileStream, hostile_streams, receipts, rss_bytes, segments
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from smppgw.app.config_models import CarrierSettings, ReconnectSettings
from smppgw.gateway.mt import MtPipeline
from smppgw.gateway.recovery import outbound_from_stored
from smppgw.gateway.routing import PrefixRouter
from smppgw.net.carrier import CarrierClient
from smppgw.net.link import SmppLink
from smppgw.protocol.codec import decode_pdu, encode_pdu
from smppgw.protocol.errors import PduDecodeError
from smppgw.protocol.framer import DEFAULT_MAX_COMMAND_LENGTH, Framer
from smppgw.protocol.pdus import Pdu, SubmitSm, SubmitSmResp
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus
from smppgw.store import Durability, NewMessage, Store, StoreConfig

EXAMPLES = int(os.environ.get("SMPPGW_FUZZ_EXAMPLES", "3"))
PHASES = (
    tuple(Phase)
    if os.environ.get("SMPPGW_FUZZ_SHRINK")
    else (Phase.explicit, Phase.reuse, Phase.generate)
)
MESSAGES = 12
INITIAL_BACKOFF = 0.05
RESPONSE_TIMEOUT = 0.5
#: How long a hostile connection lingers at most before it hangs up itself.
LINGER = 1.5
OUTPUT_BOUND = (1 << 20) + 2 * 65536
FRAMER_BOUND = DEFAULT_MAX_COMMAND_LENGTH + 65536
RSS_GROWTH_BOUND = 150 << 20

BindAnswer = Literal["ok", "refuse", "wrong_seq", "garbage", "silent"]
SubmitAnswer = Literal["none", "wrong_seq", "throttled"]


@dataclass(frozen=True, slots=True)
class HostileSmsc:
    """What one hostile SMSC connection does (see the module)."""

    bind: BindAnswer
    submits: SubmitAnswer
    stream: HostileStream


_CARRIER_SEGMENTS = st.one_of(segments(), receipts(), receipts())
hostile_smscs = st.builds(
    HostileSmsc,
    st.sampled_from(["ok", "ok", "ok", "refuse", "wrong_seq", "garbage", "silent"]),
    st.sampled_from(["none", "wrong_seq", "throttled"]),
    hostile_streams(max_segments=6).flatmap(
        lambda s: st.lists(_CARRIER_SEGMENTS, min_size=1, max_size=6).map(
            lambda segs: HostileStream(tuple(segs), s.chunk_sizes, s.delays, s.ending, s.reads)
        )
    ),
)


class _Smsc:
    """One port: the first ``len(scripts)`` connections are hostile, then sane."""

    def __init__(self, scripts: list[HostileSmsc]) -> None:
        self.scripts = scripts
        self.sane = FakeSmsc(receipts=False)
        self.accepts: list[float] = []
        self.hostile_done = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.sane._nursery = nursery
            listeners = await nursery.start(
                partial(trio.serve_tcp, self._on_connection, 0, host="127.0.0.1")
            )
            task_status.started(listeners[0].socket.getsockname()[1])

    async def _on_connection(self, stream: trio.SocketStream) -> None:
        n = len(self.accepts)
        self.accepts.append(trio.current_time())
        if n < len(self.scripts):
            try:
                await _hostile(stream, self.scripts[n])
            finally:
                await trio.aclose_forcefully(stream)
                if n == len(self.scripts) - 1:
                    self.hostile_done.set()
            return
        link = SmppLink(
            stream,
            SmppConnection(Role.SMSC, enquire_link_interval=None),
            self.sane.handler,
            name="sane-smsc",
        )
        self.sane.links.append(link)
        await link.run()


async def _hostile(stream: trio.SocketStream, script: HostileSmsc) -> None:
    """Play one hostile SMSC connection; any error of the peer's making ends it."""
    framer = Framer(0xFFFFFFFF)
    bound = trio.Event()
    sending = trio.Lock()  # the answers and the hostile stream share one socket

    async def send(data: bytes) -> None:
        async with sending:
            await stream.send_all(data)

    def answer(pdu: Pdu) -> bytes:
        if pdu.command_id in (0x00000002, 0x00000009):  # the client's bind
            if script.bind == "ok":
                bound.set()
                return encode_pdu(make_response(pdu, system_id="EVIL"))
            if script.bind == "refuse":
                return encode_pdu(make_response(pdu, CommandStatus.ESME_RBINDFAIL))
            if script.bind == "wrong_seq":
                resp = make_response(pdu, system_id="EVIL")
                return encode_pdu(resp, sequence_number=(pdu.sequence_number + 7) & 0x7FFFFFFF)
            if script.bind == "garbage":
                return b"\x00\x00\x00\x10\xde\xad\xbe\xef" + b"\xff" * 40
            return b""
        if isinstance(pdu, SubmitSm):
            if script.submits == "wrong_seq":
                return encode_pdu(
                    SubmitSmResp(message_id="X1"), sequence_number=pdu.sequence_number + 1000
                )
            if script.submits == "throttled":
                return encode_pdu(make_response(pdu, CommandStatus.ESME_RTHROTTLED))
            return b""
        if pdu.command_id == 0x00000015:  # enquire_link: a hostile SMSC may answer it
            return encode_pdu(make_response(pdu))
        return b""

    async def reader() -> None:
        try:
            while data := await stream.receive_some(65536):
                framer.feed(data)
                for frame in framer.frames():
                    try:
                        pdu = decode_pdu(frame)
                    except PduDecodeError as exc:  # pragma: no cover - the client's fault
                        raise AssertionError(f"the carrier client sent junk: {exc}") from exc
                    if out := answer(pdu):
                        await send(out)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client hung up on us: allowed at any point

    async def play() -> None:
        try:
            with trio.move_on_after(RESPONSE_TIMEOUT + 0.5):
                await bound.wait()
            for pause, chunk in script.stream.chunks():
                if pause:
                    await trio.sleep(pause)
                await send(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if script.stream.ending == "reset":
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif script.stream.ending == "linger":
            await trio.sleep(LINGER)

    with trio.move_on_after(LINGER + 2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await play()
            nursery.cancel_scope.cancel()


async def _watch(client: CarrierClient, stop: trio.Event, peaks: dict[str, int]) -> None:
    """Sample the client's live links (private attributes: the bounds under test)."""
    while not stop.is_set():
        for link in list(client._links.values()):
            peaks["out"] = max(peaks["out"], link._output.size)
            peaks["framer"] = max(peaks["framer"], link.connection._framer.buffered)
        await trio.sleep(0.005)


async def _scenario(tmp_path: Path, scripts: list[HostileSmsc]) -> None:
    rss_before = rss_bytes()
    smsc = _Smsc(scripts)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(smsc.serve)
        store = Store(tmp_path / "gw.sqlite", config=StoreConfig(durability=Durability.PROCESS))
        await nursery.start(store.run)
        pipeline = MtPipeline(store, PrefixRouter({}, default=["c1"]), ["c1"], retry_delay=0.1)
        await nursery.start(pipeline.run)
        settings_ = CarrierSettings(
            name="c1",
            host="127.0.0.1",
            port=port,
            system_id="gw",
            password="pw",
            window=4,
            response_timeout=RESPONSE_TIMEOUT,
            enquire_link_interval=1.0,
            reconnect=ReconnectSettings(initial=INITIAL_BACKOFF, max=0.2, jitter=0),
        )
        client = CarrierClient(settings_, pipeline, store)
        ids = await store.journal_accept(
            [
                NewMessage(
                    partner="p1",
                    source_addr="ACME",
                    destination_addr=f"8491{i:07d}",
                    body=b"fuzz %d" % i,
                    registered_delivery=0,
                )
                for i in range(MESSAGES)
            ]
        )
        for message_id in ids:
            stored = await store.get_message(message_id)
            assert stored is not None
            pipeline.enqueue(outbound_from_stored(stored))
        stop = trio.Event()
        peaks = {"out": 0, "framer": 0}
        nursery.start_soon(_watch, client, stop, peaks)
        await nursery.start(client.run)
        with trio.fail_after(len(scripts) * (LINGER + 4) + 10):
            await smsc.hostile_done.wait()
        await wait_for(
            lambda: len({s.destination_addr for s in smsc.sane.submits}) == MESSAGES, within=20
        )
        await pipeline.flush()
        # Every message went out once a sane SMSC was there; none was lost or failed.
        await wait_for(lambda: pipeline.statistics().failed == 0)
        states = await store_states(store, ids)
        assert set(states) <= {"sent", "submitted", "delivered"}, states
        gaps = [b - a for a, b in zip(smsc.accepts, smsc.accepts[1:], strict=False)]
        assert all(g >= INITIAL_BACKOFF * 0.8 for g in gaps), gaps  # backoff, never a spin
        assert client.statistics().reconnects >= len(scripts)
        stop.set()
        assert peaks["out"] <= OUTPUT_BOUND, peaks
        assert peaks["framer"] <= FRAMER_BOUND, peaks
        nursery.cancel_scope.cancel()
    assert rss_bytes() - rss_before < RSS_GROWTH_BOUND


# A failing example of 20 streams is long: print it anyway, without the warning.
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scripts=st.lists(hostile_smscs, min_size=1, max_size=4))
def test_a_hostile_smsc_never_crashes_the_client_or_loses_a_message(
    scripts: list[HostileSmsc],
) -> None:
    with tempfile.TemporaryDirectory(prefix="smppgw-fuzz-") as tmp:
        trio.run(_scenario, Path(tmp), scripts)
