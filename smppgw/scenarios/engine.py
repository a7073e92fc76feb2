"""The MO engine: which scenario an MO reaches, and its step committed exactly once.

Flow of an MO (the daemon calls :meth:`ScenarioEngine.on_mo` after the carrier's
``deliver_sm`` is journaled in ``inbound``):

1. decode the text, split off the keyword, look up (short code, keyword) in the table;
   a short code no scenario uses is not ours (False: the daemon gives it to the partner
   owning it); an unknown keyword on one of our short codes gets the help reply;
2. run the handler in ONE store transaction with its replies, log rows and the inbound
   row's processed mark (``smppgw.store.scenario_tx``): a redelivered MO, or one replayed
   after a crash, finds the mark and does nothing;
3. hand the journaled replies to the MT pipeline (``submit``), which routes, throttles and
   sends them like any accepted message.

Events (:meth:`on_event`) take the same path with a key instead of an inbound row.
One correlation id (``mo-<inbound id>`` or ``ev-<event key>``) is bound to every log line
of the step and written beside the MO and its replies in ``message_log``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from smppgw.gateway.partner_receipts import SCENARIO_PARTNER_PREFIX
from smppgw.protocol.codec import pack_tlvs
from smppgw.protocol.concat import split_message
from smppgw.protocol.text import SplitMode, choose_encoding, decode_text
from smppgw.protocol.tlv import Tag, Tlv
from smppgw.scenarios.handler import Context, Event, Mo, Outcome
from smppgw.scenarios.keywords import split_command
from smppgw.store import NewMessage
from smppgw.store.scenario_tx import EventIntake, LogEntry, StepWrite

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable, Sequence

    from smppgw.protocol.pdus import DeliverSm
    from smppgw.scenarios.registry import KeywordTable, LoadedScenario
    from smppgw.store import Store

__all__ = ["SCENARIO_PARTNER_PREFIX", "EngineSettings", "ScenarioEngine", "render"]

log = structlog.get_logger("smppgw.scenarios")


#: USSD (SMPP 3.4 5.3.2.44): an MO arrives as PSSR indication (1) or USSR confirm (33);
#: the answer that ends the session is PSSR response (17).
USSD_PSSR_RESPONSE = 17

DEFAULT_HELP = "Unknown command. Text HELP to {short_code} for the list of services."
#: The answer to HELP (``help_keywords``) on a short code whose scenarios do not claim
#: that keyword themselves: the first keyword of every command there.
DEFAULT_SERVICES = "Services on {short_code}: {keywords}."


@dataclass(frozen=True)
class EngineSettings:
    """Engine-wide behaviour (``scenarios:`` in the main config)."""

    help_reply: str = DEFAULT_HELP
    #: Normalized keywords answered with ``services_reply`` (what ``help_reply`` tells
    #: the subscriber to send), unless a scenario of the short code claims them.
    help_keywords: tuple[str, ...] = ("HELP",)
    services_reply: str = DEFAULT_SERVICES
    utc_offset: timedelta = timedelta(0)
    #: Replies without diacritics when that makes them fit GSM (cheaper, fewer parts).
    strip_accents: bool = True
    #: The lane of replies: a subscriber waits for them (1 = transactional).
    reply_priority: int = 1


class _Values(dict[str, Any]):
    """Template values; a placeholder with no value stays as written (and is logged)."""

    missing: list[str]

    def __missing__(self, key: str) -> str:
        self.missing.append(key)
        return "{" + key + "}"


def render(template: str, values: dict[str, Any]) -> tuple[str, list[str]]:
    """``template`` with ``values`` filled in, and the placeholders that had none."""
    filled = _Values(values)
    filled.missing = []
    return template.format_map(filled), filled.missing


@dataclass
class _Pending:
    """What a step produced, kept on the trio side to enqueue after the commit."""

    messages: list[NewMessage] = field(default_factory=list)


class ScenarioEngine:
    """See the module docstring. ``submit(ids, messages)`` queues journaled replies."""

    def __init__(
        self,
        store: Store,
        table: KeywordTable,
        settings: EngineSettings,
        submit: Callable[[list[int], list[NewMessage]], None],
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.table = table
        self.settings = settings
        self._submit = submit
        self._clock = clock
        self._rng = rng or random.SystemRandom()
        #: (scenario or "-", outcome) -> count, for the metrics.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.duplicates = 0
        #: The room of a long reply's parts (``Admission.cut_room``: set by the daemon).
        self.cut_room = SplitMode.UDH8

    def reconfigure(self, table: KeywordTable, settings: EngineSettings) -> None:
        """Swap the scenario set (SIGHUP); steps in flight finish with the old one."""
        self.table = table
        self.settings = settings

    def owns(self, short_code: str) -> bool:
        return short_code in self.table.short_codes

    # -- MO ----------------------------------------------------------------------------

    async def on_mo(
        self,
        inbound_id: int,
        pdu: DeliverSm,
        *,
        help_if_unmatched: bool = True,
        also_inbound: Sequence[int] = (),
    ) -> bool:
        """Process a journaled MO exactly once; False if it is not ours: its short code is
        no scenario's, or no keyword matched and ``help_if_unmatched`` is off (the short
        code is also a partner's, who gets the MO instead). ``also_inbound``: the other
        parts' journal rows of an MO put together from parts (``mo_parts.py``), marked
        processed by the same step."""
        short_code = pdu.destination_addr.strip()
        if not self.owns(short_code):
            return False
        payload = pdu.short_message or pdu.tlv_octets(Tag.MESSAGE_PAYLOAD) or b""
        if pdu.esm_class & 0x40 and payload:
            payload = payload[payload[0] + 1 :]
        text = decode_text(payload, pdu.data_coding)
        keyword, args = split_command(text)
        ussd_op = pdu.tlv_int(Tag.USSD_SERVICE_OP)
        session = pdu.tlv_octets(Tag.ITS_SESSION_INFO)
        mo = Mo(
            msisdn=pdu.source_addr.strip().lstrip("+"),
            short_code=short_code,
            text=text,
            command="",
            args=tuple(args),
            received_at=self._clock(),
            inbound_id=inbound_id,
            ussd=ussd_op is not None,
        )
        reply_tlvs = b""
        if ussd_op is not None:
            tlvs = [Tlv(Tag.USSD_SERVICE_OP, bytes([USSD_PSSR_RESPONSE]))]
            if session is not None:
                tlvs.append(Tlv(Tag.ITS_SESSION_INFO, session))
            reply_tlvs = pack_tlvs(tuple(tlvs))
        found = self.table.match(short_code, keyword)
        correlation = f"mo-{inbound_id}"
        bound = log.bind(correlation=correlation, short_code=short_code)
        if found is None:
            if not help_if_unmatched:
                return False
            listing = keyword in self.settings.help_keywords
            await self._help(mo, correlation, reply_tlvs, bound, also_inbound, listing=listing)
            return True
        scenario, command = found
        mo = dataclasses.replace(mo, command=command)
        pending = _Pending()

        def step(conn: sqlite3.Connection) -> StepWrite:
            ctx = self._context(conn, scenario)
            outcome = scenario.handler.handle(ctx, mo)
            return self._write(scenario, mo, outcome, correlation, reply_tlvs, pending)

        def on_error(exc: BaseException) -> StepWrite:
            bound.error("scenario handler failed", scenario=scenario.name, exc_info=exc)
            return self._write(scenario, mo, Outcome("error"), correlation, reply_tlvs, pending)

        result = await self.store.commit_step(
            step, on_error, inbound_id=inbound_id, also_inbound=also_inbound
        )
        self._finish(result, pending, scenario.name, bound)
        return True

    async def _help(
        self,
        mo: Mo,
        correlation: str,
        tlvs: bytes,
        bound: Any,
        also_inbound: Sequence[int],
        *,
        listing: bool = False,
    ) -> None:
        """Answer an MO no scenario took: the list of services for HELP (``listing``),
        else ``help_reply``, which says to send HELP."""
        pending = _Pending()
        if listing:
            keywords = ", ".join(self.table.service_keywords(mo.short_code))
            values = {"short_code": mo.short_code, "keywords": keywords}
            text, _ = render(self.settings.services_reply, values)
        else:
            text, _ = render(self.settings.help_reply, {"short_code": mo.short_code})

        def step(conn: sqlite3.Connection) -> StepWrite:
            reply = self._message("help", mo.short_code, mo.msisdn, text, tlvs)
            pending.messages = [reply]
            return StepWrite(
                messages=[reply],
                log=[
                    LogEntry(
                        direction="mo",
                        msisdn=mo.msisdn,
                        body=mo.text,
                        short_code=mo.short_code,
                        outcome="help",
                        correlation=correlation,
                    ),
                    LogEntry(
                        direction="mt",
                        msisdn=mo.msisdn,
                        body=text,
                        short_code=mo.short_code,
                        outcome="help",
                        correlation=correlation,
                        reply_index=0,
                    ),
                ],
                outcome="help",
            )

        def on_error(exc: BaseException) -> StepWrite:  # pragma: no cover - no handler code
            return StepWrite(outcome="error")

        result = await self.store.commit_step(
            step, on_error, inbound_id=mo.inbound_id, also_inbound=also_inbound
        )
        self._finish(result, pending, "-", bound)

    # -- events ------------------------------------------------------------------------

    async def on_event(self, event: Event) -> list[tuple[str, str]]:
        """Give an event to every scenario that handles its kind, each step exactly once
        (per scenario, by the event's key). Returns ``(scenario, outcome)`` pairs; an
        already seen key gives ``"duplicate"``."""
        results: list[tuple[str, str]] = []
        event = dataclasses.replace(event, msisdn=event.msisdn.strip().lstrip("+"))
        for scenario in self.table.scenarios.values():
            if scenario.file.enabled and event.kind in scenario.handler.events:
                results.append((scenario.name, await self._event_step(scenario, event)))
        return results

    async def _event_step(self, scenario: LoadedScenario, event: Event) -> str:
        key = None if event.key is None else f"{scenario.name}:{event.key}"
        # The key often holds the subscriber's number: the correlation id names it by a
        # digest, so logs stay maskable and the id still links the step's lines.
        digest = hashlib.blake2b((key or f"{event.kind}:{event.msisdn}").encode(), digest_size=6)
        correlation = f"ev-{scenario.name}-{digest.hexdigest()}"
        bound = log.bind(correlation=correlation, event_kind=event.kind)
        pending = _Pending()
        mo = Mo(event.msisdn, "", "", f"event:{event.kind}", (), self._clock())

        def step(conn: sqlite3.Connection) -> StepWrite:
            ctx = self._context(conn, scenario)
            outcome = scenario.handler.on_event(ctx, event)
            if outcome is None:
                return StepWrite(outcome="ignored")
            return self._write(scenario, mo, outcome, correlation, b"", pending, free=False)

        def on_error(exc: BaseException) -> StepWrite:
            bound.error("scenario event handler failed", scenario=scenario.name, exc_info=exc)
            return StepWrite(outcome="error")

        intake = EventIntake(event.kind, event.msisdn, dict(event.data), key)
        result = await self.store.commit_step(step, on_error, event=intake)
        self._finish(result, pending, scenario.name, bound)
        return "duplicate" if result is None else result.outcome

    async def scheduled(
        self, scenario: LoadedScenario, key: str, fn: Callable[[Context], Outcome]
    ) -> str:
        """A scheduled step of ``scenario`` (the monthly statement), once per ``key``:
        ``fn(ctx)`` runs in the transaction and its extras are sent. Returns the outcome,
        or ``"duplicate"`` when the key was done before."""
        correlation = f"job-{key}"
        bound = log.bind(correlation=correlation)
        pending = _Pending()
        mo = Mo("", "", "", f"job:{key}", (), self._clock())

        def step(conn: sqlite3.Connection) -> StepWrite:
            outcome = fn(self._context(conn, scenario))
            return self._write(scenario, mo, outcome, correlation, b"", pending, free=False)

        def on_error(exc: BaseException) -> StepWrite:
            bound.error("scheduled scenario step failed", scenario=scenario.name, exc_info=exc)
            raise exc  # not marked done: tried again at the next tick

        intake = EventIntake("job", None, {"key": key}, key)
        result = await self.store.commit_step(step, on_error, event=intake)
        self._finish(result, pending, scenario.name, bound)
        return "duplicate" if result is None else result.outcome

    # -- common ------------------------------------------------------------------------

    def _context(self, conn: sqlite3.Connection, scenario: LoadedScenario) -> Context:
        return Context(conn, self._clock(), self._rng, scenario.file, self.settings.utc_offset)

    def _finish(self, result: Any, pending: _Pending, scenario: str, bound: Any) -> None:
        if result is None:
            self.duplicates += 1
            bound.info("MO or event already processed; not again", scenario=scenario)
            return
        self.outcomes[(scenario, result.outcome)] += 1
        bound.info(
            "scenario step committed",
            scenario=scenario,
            outcome=result.outcome,
            replies=result.message_ids,
        )
        if result.message_ids:
            self._submit(list(result.message_ids), pending.messages)

    def _write(
        self,
        scenario: LoadedScenario,
        mo: Mo,
        outcome: Outcome,
        correlation: str,
        tlvs: bytes,
        pending: _Pending,
        *,
        free: bool = True,
    ) -> StepWrite:
        """The replies and log rows of ``outcome`` (runs in the writer thread)."""
        sender = scenario.file.sender
        reply_from = sender.reply or mo.short_code or scenario.file.short_codes[0]
        brand = sender.brandname or reply_from
        entries: list[LogEntry] = []
        if mo.inbound_id is not None:
            entries.append(
                LogEntry(
                    direction="mo",
                    msisdn=mo.msisdn,
                    body=mo.text,
                    short_code=mo.short_code,
                    scenario=scenario.name,
                    outcome=outcome.name,
                    member_id=outcome.member_id,
                    correlation=correlation,
                )
            )
        messages: list[NewMessage] = []
        wanted: list[tuple[str, dict[str, Any], str, str, bytes]] = []
        if outcome.reply:
            source = reply_from if free else brand
            wanted.append((outcome.name, outcome.values, mo.msisdn, source, tlvs))
        for extra in outcome.extras:
            wanted.append((extra.template, extra.values, extra.to or mo.msisdn, brand, b""))
        for template_name, values, to, source, extra_tlvs in wanted:
            template = scenario.template(template_name)
            if template is None:
                log.warning("no reply template", scenario=scenario.name, outcome=template_name)
                continue
            text, missing = render(template, values)
            if missing:
                log.warning(
                    "reply placeholders without a value",
                    scenario=scenario.name,
                    outcome=template_name,
                    missing=missing,
                )
            messages.append(self._message(scenario.name, source, to, text, extra_tlvs))
            entries.append(
                LogEntry(
                    direction="mt",
                    msisdn=to,
                    body=text,
                    short_code=mo.short_code or None,
                    scenario=scenario.name,
                    outcome=template_name,
                    member_id=outcome.member_id,
                    correlation=correlation,
                    reply_index=len(messages) - 1,
                )
            )
        pending.messages = messages
        return StepWrite(messages=messages, log=entries, outcome=outcome.name)

    def _message(self, scenario: str, source: str, to: str, text: str, tlvs: bytes) -> NewMessage:
        encoded = choose_encoding(text, strip_accents=self.settings.strip_accents)
        parts: tuple[bytes, ...] = ()
        if encoded.parts > 1:
            reference = self._rng.randrange(256)
            segments = split_message(
                encoded.payload,
                encoded.data_coding,
                SplitMode.UDH8,
                reference=reference,
                room=self.cut_room,
            )
            parts = tuple(s.short_message for s in segments)
        alnum = not source.isdigit()
        return NewMessage(
            partner=SCENARIO_PARTNER_PREFIX + scenario,
            source_addr=source,
            source_ton=5 if alnum else (1 if len(source) > 8 else 0),
            source_npi=0 if alnum else 1,
            destination_addr=to,
            dest_ton=1,
            dest_npi=1,
            body=encoded.payload,
            data_coding=encoded.data_coding,
            registered_delivery=1,
            priority=self.settings.reply_priority,
            parts=parts,
            tlvs=tlvs,
        )
