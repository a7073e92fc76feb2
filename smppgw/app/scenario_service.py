"""The scenario engine inside the daemon: MO routing, replay, reload, events, statements.

What the daemon needs around :class:`~smppgw.scenarios.engine.ScenarioEngine`:

- **MO routing**: a keyword a scenario claims wins; an unknown keyword on a short code a
  partner owns goes to that partner (issue 5: "that no scenario handles"); on one of the
  scenarios' own short codes it gets the help reply.
- **Replay at start**: an MO journaled (and acknowledged to the carrier) but not
  processed when the daemon died is processed now; the processed mark makes it once.
- **Reload** (SIGHUP): the scenario files are read again; any problem keeps the
  running set, and is logged with its file and line.
- **Events**: from the admin socket (``smppgw event ...``) and from ``*.jsonl`` files
  dropped in ``scenarios.events_dir`` (each line one event; a line's key defaults to
  ``<file>:<line>`` so a file processed twice after a crash counts once; the file then
  moves to ``done/``, or to ``failed/`` beside a ``.errors`` report).
- **Monthly statement**: at the configured day and time, once per month and scenario
  (keyed ``statement:<scenario>:<YYYY-MM>``, so a restart does not send it twice).
"""

from __future__ import annotations

import calendar
import json
import math
import time
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
import trio
from prometheus_client.core import CounterMetricFamily

from smppgw.app.config_load import ConfigError
from smppgw.app.scenario_load import load_scenarios
from smppgw.protocol.codec import unpack_tlvs
from smppgw.protocol.pdus import DeliverSm
from smppgw.scenarios.charging import HttpCharging
from smppgw.scenarios.charging_http import ChargingStatistics, run_http_charging
from smppgw.scenarios.engine import ScenarioEngine
from smppgw.scenarios.handler import Event, Extra, Outcome
from smppgw.scenarios.member_id import MemberIdFormat
from smppgw.scenarios.mo_parts import MoAssembler, WholeMo, part_of
from smppgw.store import InboundKind, StoreError
from smppgw.store.airtime import pending_charge_requests
from smppgw.store.inbound import unprocessed_inbound

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from prometheus_client.core import Metric

    from smppgw.app.admin import AdminCommands
    from smppgw.app.scenario_models import ScenarioSettings
    from smppgw.scenarios.handler import Context
    from smppgw.scenarios.registry import LoadedScenario
    from smppgw.store import NewMessage, Store

__all__ = ["ScenarioMetrics", "ScenarioService", "replay_unprocessed_mo", "statement_due"]

log = structlog.get_logger("smppgw.scenarios")

EVENTS_POLL = 2.0
STATEMENT_POLL = 60.0
MAX_EVENT_LINE = 1 << 16


def statement_due(local: datetime, day: str | int, at: str) -> str | None:
    """The month (``YYYY-MM``) whose statement is due at local time ``local``, or None.

    Due from the configured day and time of that month until the month ends.
    """
    hour, minute = (int(x) for x in at.split(":"))
    last = calendar.monthrange(local.year, local.month)[1]
    target_day = last if day == "last" else int(day)
    due = local.replace(day=target_day, hour=hour, minute=minute, second=0, microsecond=0)
    return local.strftime("%Y-%m") if local >= due else None


#: Seconds the parts of an MO wait for the missing ones before the message is handled
#: with what came.
MO_PARTS_TIMEOUT = 60.0
#: Seconds before an MO the journal refused to handle is handled again.
RETRY_DELAY = 2.0


class ScenarioService:
    """See the module docstring."""

    def __init__(
        self,
        settings: ScenarioSettings,
        store: Store,
        submit: Callable[[list[int], list[NewMessage]], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self._clock = clock
        self.charging = ChargingStatistics()
        self.parts = MoAssembler(timeout=MO_PARTS_TIMEOUT)
        self._parts_changed = trio.Event()
        #: Whole messages the journal refused to handle: tried again (``_expire_parts``).
        self._wholes_retry: list[WholeMo] = []
        self._nursery: trio.Nursery | None = None
        self._charging_started = False
        table = load_scenarios(settings.directory)  # ConfigError: refuse to start
        self.engine = ScenarioEngine(store, table, settings.engine_settings(), submit, clock=clock)
        log.info(
            "scenarios loaded",
            directory=str(settings.directory),
            scenarios=sorted(table.scenarios),
            short_codes=sorted(table.short_codes),
        )

    # -- MO --------------------------------------------------------------------------

    async def on_mo(self, inbound_id: int, pdu: DeliverSm, *, partner_owned: bool) -> bool:
        """True when a scenario (or the help reply) took the MO and marked it processed,
        or keeps it as a part of a longer message (``mo_parts.py``): a part on a short
        code that is the scenarios' alone waits for the others. (On a short code that a
        partner shares, the parts go on one by one: the partner may be owed them.)"""
        if not partner_owned and self.engine.owns(pdu.destination_addr.strip()):
            part = part_of(pdu)
            if part is not None:
                ready = self.parts.add(inbound_id, pdu, part, trio.current_time())
                self._parts_changed.set()
                await self._handle_wholes(ready)
                return True
        return await self.engine.on_mo(inbound_id, pdu, help_if_unmatched=not partner_owned)

    async def _on_whole(self, whole: WholeMo) -> None:
        if whole.repeat:
            log.info("MO part repeated after its message was handled", ids=whole.inbound_ids)
            await self.store.mark_inbound_processed(whole.inbound_ids)
            return
        if not whole.complete:
            log.warning(
                "MO in parts handled without its missing parts",
                inbound_ids=list(whole.inbound_ids),
                short_code=whole.pdu.destination_addr,
            )
        await self.engine.on_mo(whole.inbound_ids[0], whole.pdu, also_inbound=whole.inbound_ids[1:])

    async def _handle_wholes(self, wholes: list[WholeMo]) -> None:
        """Handle put-together messages in order; from the first the journal refuses
        on, they wait in :attr:`_wholes_retry` (their parts have left the assembler, so
        handing a part on again would find it a repeat)."""
        for index, whole in enumerate(wholes):
            try:
                await self._on_whole(whole)
            except StoreError as exc:
                log.warning(
                    "MO in parts not handled now (the journal refused); trying again",
                    inbound_ids=list(whole.inbound_ids),
                    error=str(exc),
                )
                self._wholes_retry.extend(wholes[index:])
                self._parts_changed.set()
                return

    async def _expire_parts(self) -> None:
        """Messages whose missing parts did not come within ``MO_PARTS_TIMEOUT``, and
        those the journal refused to handle (every ``RETRY_DELAY``)."""
        while True:
            deadline = self.parts.next_deadline()
            if self._wholes_retry:
                retry_at = trio.current_time() + RETRY_DELAY
                deadline = retry_at if deadline is None else min(deadline, retry_at)
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._parts_changed.wait()
            self._parts_changed = trio.Event()
            retry, self._wholes_retry = self._wholes_retry, []
            await self._handle_wholes([*retry, *self.parts.expire(trio.current_time())])

    # -- reload ----------------------------------------------------------------------

    def reload(self, settings: ScenarioSettings) -> bool:
        """Read the scenario files again; False (logged) and the old set kept on error."""
        try:
            table = load_scenarios(settings.directory)
        except ConfigError as exc:
            log.error("scenario reload refused", problems=str(exc))
            return False
        self.settings = settings
        self.engine.reconfigure(table, settings.engine_settings())
        if self._uses_http_charging():
            self._start_http_charging()
        log.info("scenarios reloaded", scenarios=sorted(table.scenarios))
        return True

    # -- background work -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._expire_parts)
            nursery.start_soon(self._watch_events_dir)
            nursery.start_soon(self._statements)
            self._nursery = nursery
            # Charge requests of the HTTP charging adapter (an outbox in the journal):
            # served only when a scenario charges over HTTP or requests are left from
            # before (a config change), not polled for nothing in every daemon.
            pending = await self.store.read(partial(pending_charge_requests, limit=1))
            if pending or self._uses_http_charging():
                self._start_http_charging()
            task_status.started()

    def _uses_http_charging(self) -> bool:
        return any(
            isinstance(getattr(s.handler, "charging", None), HttpCharging)
            for s in self.engine.table.scenarios.values()
        )

    def _start_http_charging(self) -> None:
        if self._nursery is None or self._charging_started:
            return
        self._charging_started = True
        self._nursery.start_soon(partial(run_http_charging, self.store, stats=self.charging))

    async def feed_event(
        self, kind: str, msisdn: str, data: dict[str, Any], key: str | None
    ) -> list[tuple[str, str]]:
        if not kind or not msisdn.strip().lstrip("+").isdigit():
            raise ValueError("an event needs a kind and a subscriber number (digits)")
        event = Event(kind, msisdn.strip().lstrip("+"), data, key)
        return await self.engine.on_event(event)

    async def _watch_events_dir(self) -> None:
        """Poll the events directory. A file the journal (or the disk) refuses now stays
        where it is and is read again at the next poll: each event's key makes a second
        reading harmless."""
        while True:
            directory = self.settings.events_dir
            if directory is not None:
                try:
                    for path in await trio.to_thread.run_sync(_event_files, directory):
                        await self._process_event_file(path)
                except (StoreError, OSError) as exc:
                    log.warning("events not read now; trying again", error=str(exc))
            await trio.sleep(EVENTS_POLL)

    async def _process_event_file(self, path: Path) -> None:
        lines = await trio.to_thread.run_sync(_read_lines, path)
        errors: list[str] = []
        handled = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise ValueError("not a JSON object")
                kind = str(item.pop("kind", ""))
                msisdn = str(item.pop("msisdn", ""))
                key = str(item.pop("key", f"{path.name}:{number}"))
                await self.feed_event(kind, msisdn, item, key)
                handled += 1
            except (ValueError, TypeError) as exc:
                errors.append(f"{path.name}:{number}: {exc}")
        target = "failed" if errors else "done"
        await trio.to_thread.run_sync(_move, path, target, errors)
        log.info("event file processed", file=path.name, events=handled, errors=len(errors))

    async def _statements(self) -> None:
        while True:
            settings = self.settings.statement
            if settings.enabled:
                offset = self.engine.settings.utc_offset
                local = datetime.fromtimestamp(self._clock(), timezone(offset))
                month = statement_due(local, settings.day, settings.time)
                if month is not None:
                    for scenario in list(self.engine.table.scenarios.values()):
                        if scenario.file.enabled and hasattr(scenario.handler, "statement"):
                            try:
                                await self.send_statement(scenario, month)
                            except StoreError as exc:  # sent at the next poll (its key)
                                log.warning(
                                    "statement not sent now; trying again",
                                    scenario=scenario.name,
                                    error=str(exc),
                                )
                            except Exception:  # a handler's bug must not end the daemon
                                log.exception("statement failed", scenario=scenario.name)
            await trio.sleep(STATEMENT_POLL)

    async def send_statement(self, scenario: LoadedScenario, month: str) -> str:
        """The month's statement of one scenario, once (its key); the step's outcome."""
        handler: Any = scenario.handler

        def step(ctx: Context) -> Outcome:
            extras: list[Extra] = handler.statement(ctx, month)
            return Outcome("statement", {"month": month, "count": len(extras)}, extras, reply=False)

        return await self.engine.scheduled(scenario, f"statement:{scenario.name}:{month}", step)

    def member_id_format(self) -> MemberIdFormat | None:
        """The member-ID pattern of the first scenario that registers members (imports
        make IDs the same way), None if none does."""
        for scenario in self.engine.table.scenarios.values():
            fmt = getattr(scenario.handler, "id_format", None)
            if isinstance(fmt, MemberIdFormat):
                return fmt
        return None

    # -- admin -----------------------------------------------------------------------

    def register_admin(self, commands: AdminCommands) -> None:
        async def event(request: dict[str, Any]) -> dict[str, Any]:
            data = request.get("data") or {}
            if not isinstance(data, dict):
                raise ValueError("data must be a JSON object")
            key = request.get("key")
            results = await self.feed_event(
                str(request.get("kind", "")),
                str(request.get("msisdn", "")),
                data,
                None if key is None else str(key),
            )
            return {"ok": True, "results": [{"scenario": s, "outcome": o} for s, o in results]}

        async def scenarios(request: dict[str, Any]) -> dict[str, Any]:
            table = self.engine.table
            return {
                "ok": True,
                "scenarios": [
                    {
                        "name": s.name,
                        "handler": s.file.handler,
                        "short_codes": list(s.file.short_codes),
                        "keywords": s.file.keyword_map(),
                        "enabled": s.file.enabled,
                        "file": s.source,
                    }
                    for s in table.scenarios.values()
                ],
            }

        commands.register("scenario.event", event)
        commands.register("scenario.list", scenarios)


async def replay_unprocessed_mo(
    store: Store, on_mo: Callable[[int, DeliverSm, str], Awaitable[None]]
) -> int:
    """Give every journaled but unprocessed MO to ``on_mo`` again (at start: the daemon
    died between acknowledging it to the carrier and processing it); how many."""
    rows = await store.read(unprocessed_inbound)
    count = 0
    for row in rows:
        if row.kind is not InboundKind.MO:
            continue
        pdu = DeliverSm(
            source_addr_ton=row.source_ton,
            source_addr_npi=row.source_npi,
            source_addr=row.source_addr,
            dest_addr_ton=row.dest_ton,
            dest_addr_npi=row.dest_npi,
            destination_addr=row.destination_addr,
            esm_class=row.esm_class,
            data_coding=row.data_coding,
            short_message=row.body,
            tlvs=unpack_tlvs(row.tlvs) if row.tlvs else (),
        )
        await on_mo(row.id, pdu, row.smsc)
        count += 1
    if count:
        log.info("replayed MO journaled before the last stop", count=count)
    return count


class ScenarioMetrics:
    """``smppgw_scenario_steps_total{scenario, outcome}`` and duplicates, read at scrape."""

    def __init__(self, service: ScenarioService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        engine = self.service.engine
        steps = CounterMetricFamily(
            "smppgw_scenario_steps",
            "Scenario steps committed (MO, events, statements) by scenario and outcome",
            labels=["scenario", "outcome"],
        )
        for (scenario, outcome), count in sorted(engine.outcomes.items()):
            steps.add_metric([scenario, outcome], count)
        yield steps
        charges = CounterMetricFamily(
            "smppgw_scenario_charge_requests",
            "Requests to the HTTP charging system by result (done, refused, retried)",
            labels=["result"],
        )
        stats = self.service.charging
        for result, count in (
            ("done", stats.done),
            ("refused", stats.refused),
            ("retried", stats.retried),
        ):
            charges.add_metric([result], count)
        yield charges
        yield CounterMetricFamily(
            "smppgw_scenario_duplicates",
            "MO redeliveries and repeated event keys recognised and not processed again",
            value=engine.duplicates,
        )


def _event_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.jsonl") if p.is_file())


def _read_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        return [line[:MAX_EVENT_LINE] for line in f]


def _move(path: Path, target: str, errors: list[str]) -> None:
    folder = path.parent / target
    folder.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    dest = folder / f"{path.stem}.{stamp}{path.suffix}"
    path.rename(dest)
    if errors:
        dest.with_suffix(".errors").write_text("\n".join(errors) + "\n", encoding="utf-8")
