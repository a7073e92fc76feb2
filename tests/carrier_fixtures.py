"""A scriptable fake SMSC over real loopback TCP, for carrier-side tests.

Deliberately small and separate from the built-in simulator: tests of the carrier
client should not pass only because both sides share a bug in one simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import trio

from smppgw.net.link import SmppLink
from smppgw.protocol.pdus import (
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    Pdu,
    SubmitSm,
)
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.protocol.status import CommandStatus
from smppgw.protocol.tlv import Tag, Tlv

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smppgw.store import Store


@dataclass
class FakeSmsc:
    """Answers binds and submits; faults are set by the test."""

    refuse_binds: int = 0  # refuse this many binds first
    throttle_every: int = 0  # answer ESME_RTHROTTLED to every Nth submit
    drop_after: int = 0  # close the connection after this many submits (once)
    fail_status: int = 0  # answer every submit with this status instead
    silent_first: int = 0  # never answer the first N submits (response timeouts)
    silent_binds: int = 0  # the first N sessions to bind never answer a submit (hung)
    throttle_first: int = 0  # answer the first N submits ESME_RTHROTTLED
    #: (index of the session in ``links``, trio time) of every submit, in order
    submit_log: list[tuple[int, float]] = field(default_factory=list)
    receipts: bool = True
    empty_ids: bool = False  # accept submits with an empty message_id (a broken SMSC)
    submits: list[SubmitSm] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    links: list[SmppLink] = field(default_factory=list)
    binds: int = 0
    bind_pdus: list[Pdu] = field(default_factory=list)
    port: int = 0
    _count: int = 0
    _dropped: bool = False
    _silent: list[SmppLink] = field(default_factory=list)
    _nursery: trio.Nursery | None = None

    async def handler(self, link: SmppLink, batch: Sequence[Pdu]) -> None:
        for pdu in batch:
            if isinstance(pdu, BindTransceiver | BindTransmitter):
                self.binds += 1
                self.bind_pdus.append(pdu)
                if self.refuse_binds > 0:
                    self.refuse_binds -= 1
                    link.respond(make_response(pdu, CommandStatus.ESME_RBINDFAIL))
                else:
                    if len(self._silent) < self.silent_binds:
                        self._silent.append(link)
                    link.respond(make_response(pdu, system_id="FAKE"))
            elif isinstance(pdu, SubmitSm):
                self._count += 1
                self.submits.append(pdu)
                self.submit_log.append((self.links.index(link), trio.current_time()))
                if self._count <= self.silent_first or link in self._silent:
                    continue
                if self._count <= self.throttle_first:
                    link.respond(make_response(pdu, CommandStatus.ESME_RTHROTTLED))
                elif self.fail_status:
                    link.respond(make_response(pdu, self.fail_status))
                elif self.throttle_every and self._count % self.throttle_every == 0:
                    link.respond(make_response(pdu, CommandStatus.ESME_RTHROTTLED))
                elif self.drop_after and self._count >= self.drop_after and not self._dropped:
                    self._dropped = True
                    link.close("fault: drop")
                    return
                else:
                    carrier_id = f"{len(self.accepted) + 1:X}"  # hex, upper case
                    self.accepted.append(carrier_id)
                    answer_id = "" if self.empty_ids else carrier_id
                    link.respond(make_response(pdu, message_id=answer_id))
                    if self.receipts and pdu.registered_delivery:
                        # Never wait on the link's own window inside its handler: the
                        # answers that free it come through the reader this handler
                        # holds up (see SmppLink's docstring).
                        assert self._nursery is not None
                        self._nursery.start_soon(link.send_request, self.receipt(carrier_id, pdu))

    def receipt(self, carrier_id: str, submit: SubmitSm) -> DeliverSm:
        text = (
            f"id:{int(carrier_id, 16)} sub:001 dlvrd:001 submit date:2611251200 "
            f"done date:2611251201 stat:DELIVRD err:000 text:x"
        )
        return DeliverSm(
            source_addr=submit.destination_addr,
            destination_addr=submit.source_addr,
            esm_class=0x04,
            short_message=text.encode(),
            tlvs=(
                Tlv.of_cstring(Tag.RECEIPTED_MESSAGE_ID, carrier_id),
                Tlv.of_int(Tag.MESSAGE_STATE, 2),
            ),
        )

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        async def on_connection(stream: trio.SocketStream) -> None:
            link = SmppLink(
                stream,
                SmppConnection(Role.SMSC, enquire_link_interval=None),
                self.handler,
                name="fake-smsc",
            )
            self.links.append(link)
            await link.run()

        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            listeners = await nursery.start(
                partial(trio.serve_tcp, on_connection, 0, host="127.0.0.1")
            )
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self.port)


async def wait_for(predicate: object, within: float = 10.0, step: float = 0.02) -> None:
    """Poll ``predicate()`` (real time) until true, or fail the test.

    Polling is deliberate: the state watched spans several components over real sockets.
    """
    assert callable(predicate)
    with trio.fail_after(within):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(step)


async def store_states(store: Store, ids: Sequence[int]) -> list[str]:
    states = []
    for message_id in ids:
        message = await store.get_message(message_id)
        assert message is not None
        states.append(str(message.state))
    return states
