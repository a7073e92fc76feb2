"""A scenario engine on a real store, without sockets: MO in, reply texts out.

``rig.mo("TD ABC123")`` journals an inbound deliver_sm like the carrier side does and
gives it to the engine; it returns the texts of the replies the step journaled.
``rig.redeliver()`` hands the same inbound row in again (a duplicate delivery).
"""

from __future__ import annotations

import random
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smppgw.protocol.pdus import DeliverSm
from smppgw.protocol.text import decode_text
from smppgw.scenarios.config import ScenarioFile
from smppgw.scenarios.engine import EngineSettings, ScenarioEngine
from smppgw.scenarios.handler import Event
from smppgw.scenarios.registry import KeywordTable, build_scenario
from smppgw.store import InboundKind, NewInbound, NewMessage, Store, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

SUBSCRIBER = "84912345678"


class Clock:
    def __init__(self, now: float = 1_790_000_000.0) -> None:  # 2026-09-21
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class ScenarioRig:
    store: Store
    engine: ScenarioEngine
    clock: Clock
    sent: list[tuple[int, NewMessage]] = field(default_factory=list)
    last_inbound: tuple[int, DeliverSm] | None = None
    _serial: int = 0

    async def mo(
        self, text: str, msisdn: str = SUBSCRIBER, short_code: str = "8055", **pdu: Any
    ) -> list[str]:
        """Deliver an MO; the reply texts (decoded) it produced, in order."""
        self._serial += 1
        deliver = DeliverSm(
            source_addr=msisdn,
            destination_addr=short_code,
            short_message=text.encode("utf-16-be") if not text.isascii() else text.encode(),
            data_coding=0 if text.isascii() else 8,
            **pdu,
        )
        [result] = await self.store.journal_inbound(
            [
                NewInbound(
                    smsc="sim",
                    dedup_key=f"test:{self._serial}",
                    kind=InboundKind.MO,
                    source_addr=msisdn,
                    destination_addr=short_code,
                    body=deliver.short_message,
                    data_coding=deliver.data_coding,
                )
            ]
        )
        self.last_inbound = (result.inbound_id, deliver)
        return await self._deliver(result.inbound_id, deliver)

    async def redeliver(self) -> list[str]:
        assert self.last_inbound is not None
        return await self._deliver(*self.last_inbound)

    async def _deliver(self, inbound_id: int, deliver: DeliverSm) -> list[str]:
        before = len(self.sent)
        ours = await self.engine.on_mo(inbound_id, deliver)
        assert ours, "the short code is not a scenario's"
        return [texts(m) for _, m in self.sent[before:]]

    async def event(
        self, kind: str, msisdn: str = SUBSCRIBER, key: str | None = None, **data: Any
    ) -> list[str]:
        before = len(self.sent)
        await self.engine.on_event(Event(kind, msisdn, data, key))
        return [texts(m) for _, m in self.sent[before:]]

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self.store.read(lambda conn: conn.execute(sql, args).fetchall())


def texts(message: NewMessage) -> str:
    """The whole text of a journaled MT (parts joined, UDH dropped)."""
    if not message.parts:
        return decode_text(message.body, message.data_coding)
    return "".join(decode_text(p[p[0] + 1 :], message.data_coding) for p in message.parts)


def scenario(**fields: Any) -> ScenarioFile:
    base: dict[str, Any] = {"name": "demo", "short_codes": ["8055"]}
    return ScenarioFile.model_validate({**base, **fields})


@asynccontextmanager
async def scenario_rig(
    tmp_path: Path, *files: ScenarioFile, settings: EngineSettings | None = None, seed: int = 1
) -> AsyncIterator[ScenarioRig]:
    clock = Clock()
    async with open_store(tmp_path / "scenarios.db", clock=clock) as store:
        table = KeywordTable([build_scenario(f, f"{f.name}.yaml") for f in files])
        sent: list[tuple[int, NewMessage]] = []

        def submit(ids: list[int], messages: list[NewMessage]) -> None:
            sent.extend(zip(ids, messages, strict=True))

        engine = ScenarioEngine(
            store,
            table,
            settings or EngineSettings(),
            submit,
            clock=clock,
            rng=random.Random(seed),
        )
        yield ScenarioRig(store, engine, clock, sent)
