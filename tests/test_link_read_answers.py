"""``SmppLink.when_peer_has_read``: told once the peer answered a request queued after
what we sent (how the carrier side knows an MO's answer reached the SMSC, which then
has no reason to deliver it again). Real links over memory streams, autojump clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from smppgw.net.link import RequestTimeout, SmppLink
from smppgw.net.peer_reads import NUDGE_SPACING, PeerReads
from smppgw.protocol.pdus import BindTransceiver, Pdu, SubmitSm
from smppgw.protocol.session import SmppConnection, make_response
from smppgw.protocol.states import Role

if TYPE_CHECKING:
    from collections.abc import Sequence


async def _answer(link: SmppLink, batch: Sequence[Pdu]) -> None:
    for pdu in batch:
        link.respond(make_response(pdu))


async def _ignore_submits(link: SmppLink, batch: Sequence[Pdu]) -> None:
    for pdu in batch:
        if not isinstance(pdu, SubmitSm):
            link.respond(make_response(pdu))


async def _bound_pair(
    nursery: trio.Nursery, smsc_handler: Any = _answer
) -> tuple[SmppLink, SmppLink]:
    a, b = trio.testing.memory_stream_pair()
    esme_conn = SmppConnection(Role.ESME, enquire_link_interval=None, response_timeout=2.0)
    esme = SmppLink(a, esme_conn, _answer)
    smsc = SmppLink(b, SmppConnection(Role.SMSC, enquire_link_interval=None), smsc_handler)
    await nursery.start(smsc.run)
    await nursery.start(esme.run)
    await esme.request(BindTransceiver(system_id="gw"))
    return esme, smsc


def _requests(link: SmppLink) -> int:
    return link.connection.statistics().requests_sent


async def _first_told_second_waits(esme: SmppLink, told: list[str]) -> None:
    """A first waiter told by its enquire_link; a second one within the spacing,
    which sends none and waits for whatever request comes next."""
    esme.when_peer_has_read(lambda: told.append("first"))
    await trio.sleep(0.1)
    esme.when_peer_has_read(lambda: told.append("second"))
    assert _requests(esme) == 2  # no second enquire_link within the spacing
    await trio.sleep(0.1)
    assert told == ["first"]  # nothing followed the second yet


async def test_an_enquire_link_follows_and_its_answer_tells(
    autojump_clock: trio.testing.MockClock,
) -> None:
    told: list[str] = []
    async with trio.open_nursery() as nursery:
        esme, _smsc = await _bound_pair(nursery)
        esme.when_peer_has_read(lambda: told.append("first"))
        assert _requests(esme) == 2  # the bind, and the enquire_link sent at once
        assert told == []  # not before the peer answered
        await trio.sleep(0.1)
        assert told == ["first"]
        nursery.cancel_scope.cancel()


async def test_within_the_spacing_the_next_request_answered_tells(
    autojump_clock: trio.testing.MockClock,
) -> None:
    told: list[str] = []
    async with trio.open_nursery() as nursery:
        esme, _smsc = await _bound_pair(nursery)
        await _first_told_second_waits(esme, told)
        await esme.request(SubmitSm(destination_addr="849", short_message=b"x"))
        assert told == ["first", "second"]
        await trio.sleep(NUDGE_SPACING)
        esme.when_peer_has_read(lambda: told.append("third"))
        assert _requests(esme) == 4  # the spacing passed: an enquire_link again
        await trio.sleep(0.1)
        assert told == ["first", "second", "third"]
        nursery.cancel_scope.cancel()


async def test_a_link_that_ends_first_never_tells(
    autojump_clock: trio.testing.MockClock,
) -> None:
    told: list[str] = []
    async with trio.open_nursery() as nursery:
        esme, _smsc = await _bound_pair(nursery)
        esme.when_peer_has_read(lambda: told.append("lost"))
        esme.close("test")
        await trio.sleep(5)
        assert told == []
        nursery.cancel_scope.cancel()


async def test_a_request_left_unanswered_tells_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    told: list[str] = []
    async with trio.open_nursery() as nursery:
        esme, _smsc = await _bound_pair(nursery, _ignore_submits)
        await _first_told_second_waits(esme, told)
        with pytest.raises(RequestTimeout):  # the request that follows gets no answer
            await esme.request(SubmitSm(destination_addr="849", short_message=b"x"))
        assert told == ["first"]
        nursery.cancel_scope.cancel()


def test_peer_reads_tells_a_callback_at_the_answer_to_the_next_request() -> None:
    """The bookkeeping alone (no link): a callback waits for the first request sent
    after it, is told when that one is answered, never when it fails; a nudge is due at
    most once a spacing."""
    told: list[str] = []
    reads = PeerReads()
    assert reads.wait(lambda: told.append("a"), now=10.0)  # nudge now
    assert not reads.wait(lambda: told.append("b"), now=10.5)  # too soon
    reads.answered(1, ok=True)  # an answer to an earlier request: not theirs
    reads.sent(7)
    assert told == []
    assert reads.wait(lambda: told.append("c"), now=10.0 + NUDGE_SPACING)
    reads.sent(8)
    reads.answered(8, ok=False)  # failed: "c" is never told
    reads.answered(7, ok=True)
    assert told == ["a", "b"]
    reads.wait(lambda: told.append("d"), now=20.0)
    reads.clear()
    reads.sent(9)
    reads.answered(9, ok=True)
    assert told == ["a", "b"]
