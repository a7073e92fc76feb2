"""cancel_sm without a message id (SMPP 3.4 4.9.1): every one of the partner's messages
from the source to the destination that is still waiting here, end to end through the
daemon, our own link as the partner (smpplib sends no cancel_sm)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from carrier_fixtures import wait_for
from partner_fixtures import esme, partner_daemon

from smppgw.protocol.pdus import CancelSm, QuerySm, SubmitSm
from smppgw.protocol.receipt import MessageState as ReceiptState
from smppgw.protocol.status import CommandStatus as S
from smppgw.sim.smsc import SimulatedSmsc
from smppgw.store import NewOrder, OrderKind

if TYPE_CHECKING:
    from pathlib import Path

    from smppgw.app.daemon import Daemon
    from smppgw.net.link import SmppLink

ONE = "84911111111"
TWO = "84922222222"
TOMORROW = "000001000000000R"  # relative: a day, kept as an id (far ahead)
HALF_MINUTE = "000000000030000R"  # held whole among the delayed


async def _submit(link: SmppLink, destination: str, source: str = "ACME", **kw: Any) -> int:
    resp = await link.request(
        SubmitSm(
            source_addr_ton=5,
            source_addr=source,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=destination,
            short_message=b"hello",
            **kw,
        )
    )
    assert resp.command_status == 0
    return int(resp.message_id)  # type: ignore[attr-defined]


async def _states(daemon: Daemon, ids: list[int]) -> list[str]:
    assert daemon.store is not None
    return [m.state.value for m in await daemon.store.messages_by_id(ids)]


async def test_every_waiting_message_between_the_two_addresses_is_cancelled(
    tmp_path: Path,
) -> None:
    async with partner_daemon(tmp_path, carrier_down=True) as (daemon, port):
        assert daemon.store is not None
        assert daemon.pipeline is not None
        pipeline = daemon.pipeline
        order = await daemon.store.create_order(
            NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=20)
        )
        async with esme(port) as link:
            queued = [await _submit(link, ONE), await _submit(link, "+" + ONE)]
            other_dest = await _submit(link, TWO)
            mid = await _submit(link, ONE)
            other_source = await _submit(link, ONE, source="8055")
            far = await _submit(link, ONE, schedule_delivery_time=TOMORROW)
            soon = await _submit(link, ONE, schedule_delivery_time=HALF_MINUTE)
            last = await _submit(link, TWO)
            assert (pipeline.queued, pipeline.scheduled) == (6, 2)
            cancelled = [*queued, mid, far, soon]

            # Source in any case, destination with or without "+".
            resp = await link.request(CancelSm(source_addr="acme", destination_addr="+" + ONE))
            assert resp.command_status == 0
            assert await _states(daemon, cancelled) == ["rejected"] * 5
            query = await link.request(QuerySm(message_id=str(far), source_addr="ACME"))
            assert query.message_state == ReceiptState.DELETED  # type: ignore[attr-defined]
            # Nothing left to cancel between them.
            again = await link.request(CancelSm(source_addr="ACME", destination_addr=ONE))
            assert again.command_status == S.ESME_RCANCELFAIL

        # Another partner's cancel of the same addresses finds none of acme's.
        async with esme(port, "beta") as beta:
            theirs = await beta.request(CancelSm(source_addr="8055", destination_addr=ONE))
            assert theirs.command_status == S.ESME_RCANCELFAIL

        kept = [other_dest, other_source, last]
        assert await _states(daemon, kept) == ["accepted"] * 3
        assert (pipeline.queued, pipeline.scheduled) == (3, 0)
        # The rest still go in the order they came.
        assert [m.id for q in pipeline.queues.values() for m in q.drain()] == kept
        got = await daemon.store.get_order(order)
        assert got is not None
        assert (got.reserved, got.spent) == (3, 0)  # the cancelled ones' quota is back


async def test_held_messages_are_cancelled_by_addresses_too(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port), esme(port, "mod") as link:
        assert daemon.store is not None
        held = [await _submit(link, ONE, source="ANY") for _ in range(3)]
        other = await _submit(link, TWO, source="ANY")
        resp = await link.request(CancelSm(source_addr="ANY", destination_addr=ONE))
        assert resp.command_status == 0
        assert await _states(daemon, held) == ["rejected"] * 3
        assert [m.id for m in await daemon.store.held_messages()] == [other]


async def test_a_message_the_carrier_took_is_not_cancelled(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path) as (daemon, port):
        assert daemon.store is not None
        await daemon.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=5))
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        async with esme(port) as link:
            sent = await _submit(link, ONE)
            await wait_for(lambda: len(sim.submits) == 1)
            resp = await link.request(CancelSm(source_addr="ACME", destination_addr=ONE))
            assert resp.command_status == S.ESME_RCANCELFAIL
        assert (await _states(daemon, [sent]))[0] in ("submitted", "sent", "delivered")


async def test_what_a_cancel_by_addresses_must_say(tmp_path: Path) -> None:
    async with partner_daemon(tmp_path, carrier_down=True) as (daemon, port):
        assert daemon.store is not None
        await daemon.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=5))
        async with esme(port) as link:
            waiting = await _submit(link, ONE)
            refusals = [
                (CancelSm(destination_addr=ONE), S.ESME_RINVSRCADR),
                (CancelSm(source_addr="ACME"), S.ESME_RINVDSTADR),
                # service_type is not kept with a message: the cancel could not keep to it.
                (
                    CancelSm(service_type="WAP", source_addr="ACME", destination_addr=ONE),
                    S.ESME_RINVSERTYP,
                ),
            ]
            for pdu, status in refusals:
                assert (await link.request(pdu)).command_status == status
        assert await _states(daemon, [waiting]) == ["accepted"]
