"""The alert service on a real store and a real (tiny, local) SMTP server: one SMS per
alert journaled, one mail per audience, nothing again after a restart; mails retried
until the server takes them."""

from __future__ import annotations

import email
import socketserver
import threading
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from smppgw.alerts.mailer import SmtpTarget
from smppgw.alerts.plan import ALERT_PARTNER, AlertPlan, Contacts, Template
from smppgw.alerts.rules import DAY, AlertKind
from smppgw.alerts.service import AlertService
from smppgw.gateway.partner_receipts import MessageInfo, partner_receipt
from smppgw.protocol.text import decode_text
from smppgw.store import MessageState, NewMessage, NewOrder, OrderKind, Store, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping
    from email.message import Message
    from pathlib import Path

    import pytest

NOW = 1_790_000_000.0
PARTNER_MAIL = "ops@acme.example"
OPERATOR_MAIL = "noc@gw.example"
PARTNER_SMS = "84913000000"
OPERATOR_SMS = "84912000000"


# -- a minimal SMTP server ---------------------------------------------------------------


@dataclass
class Received:
    sender: str
    to: list[str]
    message: Message


@dataclass
class SmtpBox:
    """What the server received, and how it should misbehave (``fail``: the reply to
    MAIL FROM, e.g. ``451 later``; ``refuse``: the reply to RCPT TO)."""

    mails: list[Received] = field(default_factory=list)
    fail: str | None = None
    refuse: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(socketserver.StreamRequestHandler):
    box: SmtpBox

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 test ESMTP")
        sender, rcpts = "", list[str]()
        while line := self.rfile.readline():
            verb, _, arg = line.decode().rstrip("\r\n").partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                self._say("250 test")
            elif verb == "MAIL":
                if self.box.fail:
                    self._say(self.box.fail)
                    continue
                sender, rcpts = arg.partition(":")[2].strip("<> "), []
                self._say("250 ok")
            elif verb == "RCPT":
                if self.box.refuse:
                    self._say(self.box.refuse)
                    continue
                rcpts.append(arg.partition(":")[2].strip("<> "))
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                with self.box.lock:
                    self.box.mails.append(Received(sender, rcpts, email.message_from_bytes(data)))
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:  # RSET, NOOP
                self._say("250 ok")


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpBox, int]]:
    box = SmtpBox()
    handler = type("Handler", (_Handler,), {"box": box})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# -- the rig -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _plan(port: int, **kw: Any) -> AlertPlan:
    settings: dict[str, Any] = {
        "operator": Contacts((OPERATOR_MAIL,), (OPERATOR_SMS,)),
        "partner_contacts": {"acme": Contacts((PARTNER_MAIL,), (PARTNER_SMS,))},
        "smtp": SmtpTarget("127.0.0.1", port, sender="gw@gw.example", timeout=5),
    }
    return AlertPlan(**{**settings, **kw})


@dataclass
class Rig:
    store: Store
    clock: Clock
    box: SmtpBox
    port: int
    sent: list[tuple[int, NewMessage]] = field(default_factory=list)
    violations: dict[str, int] = field(default_factory=dict)

    def service(self, **kw: Any) -> AlertService:
        def submit(ids: list[int], messages: list[NewMessage]) -> None:
            self.sent.extend(zip(ids, messages, strict=True))

        def violations() -> Mapping[str, int]:
            return dict(self.violations)

        return AlertService(
            _plan(self.port, **kw), self.store, submit, violations=violations, clock=self.clock
        )

    async def journal(self) -> list[tuple[Any, ...]]:
        return await self.store.read(
            lambda conn: conn.execute(
                "SELECT destination_addr, source_addr, registered_delivery, body, data_coding,"
                " state FROM mt_message WHERE partner = ? ORDER BY id",
                (ALERT_PARTNER,),
            ).fetchall()
        )

    async def use(self, partner: str, parts: int) -> None:
        result = await self.store.reserve_quota(partner, parts)
        assert hasattr(result, "reservation_id"), result


@asynccontextmanager
async def rig(tmp_path: Path, db: str = "alerts.db") -> AsyncIterator[Rig]:
    clock = Clock()
    with smtp_server() as (box, port):
        async with open_store(tmp_path / db, clock=clock) as store:
            yield Rig(store, clock, box, port)


def _texts(rows: list[tuple[Any, ...]]) -> list[str]:
    return [decode_text(body, dc) for _, _, _, body, dc, _ in rows]


# -- tests -------------------------------------------------------------------------------


async def test_each_threshold_once_sms_and_mail_to_both_and_not_again_after_restart(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        order_id = await r.store.create_order(
            NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100)
        )
        service = r.service()
        await service.check()
        assert await r.journal() == []
        assert r.box.mails == []

        await r.use("acme", 85)
        await service.check()
        rows = await r.journal()
        assert [(to, src, rd, state) for to, src, rd, _, _, state in rows] == [
            (PARTNER_SMS, "ALERT", 0, "accepted"),
            (OPERATOR_SMS, "ALERT", 0, "accepted"),
        ]
        assert _texts(rows) == [f"Order {order_id} (acme): 85% used, 15 left."] * 2
        assert len(r.sent) == 2
        assert all(i > 0 for i, _ in r.sent)
        assert [m.destination_addr for _, m in r.sent] == [PARTNER_SMS, OPERATOR_SMS]
        assert [(m.sender, m.to) for m in r.box.mails] == [
            ("gw@gw.example", [PARTNER_MAIL]),
            ("gw@gw.example", [OPERATOR_MAIL]),
        ]
        mail = r.box.mails[0].message
        assert mail["Subject"] == f"[smppgw] acme: order {order_id} is 80% used"
        assert mail["To"] == PARTNER_MAIL
        assert "has used 85 of 100 (85%); 15 left" in mail.get_payload()

        await service.check()  # the same usage: nothing more
        assert len(await r.journal()) == 2
        assert len(r.box.mails) == 2

        await r.use("acme", 11)  # 96 %
        await service.check()
        assert _texts(await r.journal())[2:] == [f"Order {order_id} (acme): 96% used, 4 left."] * 2
        assert len(r.box.mails) == 4

        # a restart: a new service on the same store sends nothing again
        again = r.service()
        await again.check()
        assert len(await r.journal()) == 4
        assert len(r.box.mails) == 4
        assert again.statistics().alerts == {}

        await r.use("acme", 4)  # used up
        await again.check()
        assert (
            _texts(await r.journal())[4:]
            == [f"Order {order_id} (acme) is used up. Please renew."] * 2
        )
        assert r.box.mails[-1].message["Subject"] == f"[smppgw] acme: order {order_id} is used up"
        assert len(r.box.mails) == 6
        assert again.statistics().alerts == {"used_up": 1}
        assert again.statistics().mails_sent == 2


async def test_restart_with_the_store_reopened(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=10))
        await r.use("acme", 10)  # 80, 95 and 100 at once: one alert, the others covered
        await r.service().check()
        assert len(await r.journal()) == 2
        assert len(r.box.mails) == 2
        box = r.box
    async with rig(tmp_path) as r2:
        await r2.service().check()
        assert len(await r2.journal()) == 2
        assert r2.box.mails == []
        keys = await r2.store.read(
            lambda conn: conn.execute(
                "SELECT kind, event_key FROM event ORDER BY event_key"
            ).fetchall()
        )
    assert ("alert", "alert:order:1:100") in keys
    assert ("alert_covered", "alert:order:1:80") in keys
    assert ("alert_covered", "alert:order:1:95") in keys
    assert box.mails[0].message["Subject"].endswith("is used up")


async def test_a_mail_that_fails_is_sent_later_once_and_the_sms_not_again(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        await r.use("acme", 90)
        r.box.fail = "451 try again later"
        service = r.service()
        await service.check()
        assert len(await r.journal()) == 2  # the SMS do not wait for the mail
        assert r.box.mails == []
        assert service.statistics().mail_failures == 1  # the pass stops at the first
        await service.check()
        assert len(await r.journal()) == 2
        assert service.statistics().mail_failures == 2

        # the process restarts while the server is still down, then it recovers
        restarted = r.service()
        r.box.fail = None
        await restarted.check()
        assert len(await r.journal()) == 2
        assert sorted(m.to[0] for m in r.box.mails) == [OPERATOR_MAIL, PARTNER_MAIL]
        await restarted.check()
        await service.check()
        assert len(r.box.mails) == 2


async def test_a_mail_refused_for_good_is_not_retried(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        await r.use("acme", 81)
        r.box.refuse = "550 no such mailbox"
        service = r.service()
        await service.check()
        assert service.statistics().mails_refused == 2
        r.box.refuse = None
        await service.check()
        assert r.box.mails == []
        results = await r.store.read(
            lambda conn: conn.execute(
                "SELECT json_extract(payload, '$.result') FROM event WHERE kind = 'alert_mail'"
            ).fetchall()
        )
        assert len(results) == 2
        assert all(str(row[0]).startswith("refused: every recipient refused") for row in results)


async def test_expiring_order_and_contacts_of_operator_only(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        order_id = await r.store.create_order(
            NewOrder(partner="beta", kind=OrderKind.PREPAID, limit=100, expires_at=NOW + 3 * DAY)
        )
        service = r.service()
        await service.check()
        rows = await r.journal()
        assert [to for to, *_ in rows] == [OPERATOR_SMS]  # beta has no contacts of its own
        assert _texts(rows) == [
            f"Order {order_id} (beta) expires 2026-09-24 14:13 +00:00, 100 left."
        ]
        assert [m.to for m in r.box.mails] == [[OPERATOR_MAIL]]
        r.clock.now += 2.5 * DAY
        await service.check()
        assert len(await r.journal()) == 2
        r.clock.now += 0.4 * DAY
        await service.check()
        assert len(await r.journal()) == 2


async def test_repeated_content_violations(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        service = r.service(content_count=3, content_window=3600.0)
        r.violations["acme"] = 2
        await service.check()
        assert await r.journal() == []
        r.violations["acme"] = 3
        r.clock.now += 60
        await service.check()
        assert (
            _texts(await r.journal())
            == ["acme: 3 messages refused or held by content rules in 1h."] * 2
        )
        assert (
            r.box.mails[0].message["Subject"] == "[smppgw] acme: 3 messages broke the content rules"
        )
        r.violations["acme"] = 5
        r.clock.now += 60
        await service.check()  # counted anew since the alert: 2 < 3
        assert len(await r.journal()) == 2
        # a restart within the same period: counters start at 0 again, and even at the
        # count again the period's key is taken
        restarted = r.service(content_count=3, content_window=3600.0)
        r.violations["acme"] = 4
        await restarted.check()
        assert len(await r.journal()) == 2


async def _mails(box: SmtpBox, n: int) -> None:
    with trio.fail_after(10):
        while len(box.mails) < n:  # noqa: ASYNC110 (a server thread: polled)
            await trio.sleep(0.02)


async def test_run_checks_at_once_then_every_interval(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        await r.use("acme", 80)
        service = r.service(check_interval=0.05)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            await _mails(r.box, 2)
            await r.use("acme", 15)
            await _mails(r.box, 4)
            nursery.cancel_scope.cancel()
        assert len(await r.journal()) == 4


async def test_alert_sms_owe_no_partner_receipt_and_long_texts_split(tmp_path: Path) -> None:
    long_text = "Đơn hàng {order_id} của {partner} đã dùng {percent}%. " * 3
    async with rig(tmp_path) as r:
        await r.store.create_order(NewOrder(partner="acme", kind=OrderKind.PREPAID, limit=100))
        await r.use("acme", 80)
        plan_kw: dict[str, Any] = {
            "templates": {AlertKind.QUOTA: Template("s", "b", long_text)},
            "smtp": None,
        }
        await r.service(**plan_kw).check()
        assert r.box.mails == []  # no SMTP settings: SMS only
        [(message_id, message), _] = r.sent
        assert message.data_coding == 8
        assert len(message.parts) == 2  # about 105 UCS2 characters
        stored = await r.store.get_message(message_id)
        assert stored is not None
        assert stored.part_count == 2
        info = MessageInfo(
            message_id=message_id,
            partner=message.partner,
            source_addr=message.source_addr,
            source_ton=message.source_ton,
            source_npi=message.source_npi,
            destination_addr=message.destination_addr,
            dest_ton=message.dest_ton,
            dest_npi=message.dest_npi,
            registered_delivery=message.registered_delivery,
            parts=2,
            submitted_at=NOW,
        )
        for state in (MessageState.DELIVERED, MessageState.FAILED):
            assert partner_receipt(info, state, status=None, error=None, now=NOW) is None


async def test_a_check_that_fails_is_counted_and_the_next_pass_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one check (or a store error that is not a disk one) is logged and
    counted; it used to leave the task and end the daemon."""
    async with rig(tmp_path) as r:
        service = r.service(check_interval=0.01)
        passes: list[int] = []

        async def broken(now: float) -> None:
            passes.append(1)
            raise RuntimeError("a bug")

        monkeypatch.setattr(service, "_check_orders", broken)
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            with trio.fail_after(5):
                while len(passes) < 3:  # noqa: ASYNC110 - the passes go on
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        assert service.statistics().check_errors >= 3
