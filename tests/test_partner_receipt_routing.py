"""Which of a partner's receiver sessions a receipt goes to: one that has room in its
window. A session that stops answering (its window full) must not hold back the
receipts its sibling sessions could take."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from carrier_fixtures import wait_for
from partner_fixtures import PASSWORD, esme, partner_daemon
from test_partner_commands import _submit

from smppgw.net.link import SmppLink
from smppgw.protocol.pdus import BindTransceiver, DeliverSm, Pdu
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from pathlib import Path

COUNT = 200
#: The server's window per partner session in the fixture's config.
WINDOW = 64


async def test_a_stuck_receiver_does_not_hold_back_the_others(tmp_path: Path) -> None:
    answered: list[DeliverSm] = []

    async def answer(link: SmppLink, batch: list[Pdu]) -> None:
        for pdu in batch:
            if isinstance(pdu, DeliverSm):
                answered.append(pdu)
                link.respond(make_response(pdu))

    async def never(link: SmppLink, batch: list[Pdu]) -> None:
        return None  # a partner process that hangs: no deliver_sm_resp

    async def receiver(nursery: trio.Nursery, port: int, handler: object) -> SmppLink:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        link = SmppLink(stream, SmppConnection(Role.ESME), handler)  # type: ignore[arg-type]
        await nursery.start(link.run)
        resp = await link.request(BindTransceiver(system_id="acme", password=PASSWORD))
        assert resp.command_status == 0
        return link

    async with partner_daemon(tmp_path) as (daemon, port):
        assert daemon.store is not None
        await daemon.store.create_order(
            NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=COUNT)
        )
        async with trio.open_nursery() as nursery:
            stuck = await receiver(nursery, port, never)
            good = await receiver(nursery, port, answer)
            async with esme(port) as sender:
                for i in range(COUNT):
                    submit = _submit(destination=f"8491{i:07d}", registered_delivery=1)
                    assert (await sender.request(submit)).command_status == 0
            # At most a window's worth waits on the stuck session; the rest arrive on
            # the other one long before the stuck one's requests time out (10 s).
            await wait_for(lambda: len(answered) >= COUNT - WINDOW, within=5)
            stuck.close()
            good.close()
            nursery.cancel_scope.cancel()
