"""The interface a scenario handler implements, and what it is given.

A handler is a plain class. The engine makes one per scenario file at load (and again on
reload) with the file's :class:`~smppgw.scenarios.config.ScenarioFile` and its
``settings:`` validated against the handler's ``Settings`` model. For each MO whose
keyword maps to one of the handler's commands the engine calls::

    outcome = handler.handle(ctx, mo)

and sends the reply template named ``outcome.name`` with ``outcome.values`` filled in.
Events from the operator's systems (``topup``, ``low_balance``...) go to
``handler.on_event(ctx, event)``; a handler that does not care returns None.

**Where it runs.** ``handle`` runs in the store's writer thread *inside the transaction*
that also journals the reply and marks the MO processed, so everything it does through
``ctx.conn`` commits together with the reply, exactly once, or not at all. Hence the
rules: do only SQL through ``ctx.conn`` (the helpers in ``smppgw.store.members``,
``smppgw.store.loyalty`` and ``smppgw.store.airtime``), no network, no sleeping, no
trio, no commit or rollback; be quick (every other write waits). Raise to abandon the
step: its changes are rolled back and the subscriber gets the scenario's ``error``
reply. Time comes from ``ctx.now`` and randomness from
``ctx.rng`` (tests pin both).

A minimal handler (see README "Writing a scenario handler")::

    class Echo(Handler):
        commands = frozenset({"echo"})
        default_replies = {"echoed": "You said: {text}"}

        def handle(self, ctx: Context, mo: Mo) -> Outcome:
            return Outcome("echoed", {"text": " ".join(mo.args)})
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import random
    import sqlite3

    from smppgw.scenarios.config import ScenarioFile

__all__ = [
    "Context",
    "Event",
    "Extra",
    "Handler",
    "Mo",
    "NoSettings",
    "Outcome",
]


class NoSettings(BaseModel):
    """The ``settings:`` of a handler that has none (anything given is refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Mo:
    """An MO as the handler sees it: who, to which short code, which command, what else.

    ``args`` are the words after the keyword as typed; ``text`` is the whole message.
    ``ussd`` is true when it came over USSD (the reply goes back in the same session).
    """

    msisdn: str
    short_code: str
    text: str
    command: str
    args: tuple[str, ...]
    received_at: float
    inbound_id: int | None = None
    ussd: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """An event from the operator's systems: ``kind`` (``topup``, ``low_balance``,
    ``monthly_spend``...), the subscriber, and its data (``amount``...)."""

    kind: str
    msisdn: str
    data: dict[str, Any]
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Extra:
    """A further MT a step sends (a gift's card number and PIN, an offer): the template
    named ``template`` under the scenario's brandname, to ``to`` (default: the MO's
    number)."""

    template: str
    values: dict[str, Any] = field(default_factory=dict)
    to: str | None = None


@dataclass(slots=True)
class Outcome:
    """What a step came to: ``name`` picks the reply template (and is the outcome in the
    log and the metrics); ``values`` fill its placeholders. ``reply=False`` sends no
    reply (an event that concerns nobody). ``member_id`` marks the log rows."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    extras: list[Extra] = field(default_factory=list)
    member_id: str | None = None
    reply: bool = True


@dataclass(slots=True)
class Context:
    """What a step may use: the open transaction, the time, randomness, its scenario."""

    conn: sqlite3.Connection
    now: float
    rng: random.Random
    scenario: ScenarioFile
    utc_offset: timedelta = timedelta(0)

    @property
    def local_time(self) -> datetime:
        """``now`` in the operator's time zone (campaign dates and "per day" limits)."""
        return datetime.fromtimestamp(self.now, timezone(self.utc_offset))

    @property
    def local_day(self) -> str:
        return self.local_time.strftime("%Y-%m-%d")

    def in_campaign(self) -> bool:
        """Whether ``now`` is within the scenario's campaign dates (inclusive days)."""
        campaign = self.scenario.campaign
        if campaign is None:
            return True
        day = self.local_time.date()
        if campaign.starts is not None and day < campaign.starts:
            return False
        return not (campaign.ends is not None and day > campaign.ends)

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


class Handler(abc.ABC):
    """Base of every handler; subclass it (see the module docstring).

    Class attributes:
        Settings: the pydantic model of the scenario file's ``settings:``.
        commands: the command names the handler understands; a scenario file maps each
            to its keywords under ``commands:`` (a handler may leave some unmapped).
        default_replies: a template per outcome; a scenario file's ``replies:``
            overrides them one by one. Every outcome the handler can return must have
            one here, so that a scenario file can never miss a reply.
        events: the event kinds :meth:`on_event` handles.
    """

    Settings: ClassVar[type[BaseModel]] = NoSettings
    commands: ClassVar[frozenset[str]] = frozenset()
    default_replies: ClassVar[dict[str, str]] = {}
    events: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, scenario: ScenarioFile, settings: Any) -> None:
        self.scenario = scenario
        self.settings = settings

    @abc.abstractmethod
    def handle(self, ctx: Context, mo: Mo) -> Outcome:
        """The outcome of one MO (runs inside the step's transaction)."""

    def on_event(self, ctx: Context, event: Event) -> Outcome | None:
        """Handle an event of a kind listed in ``events``; None: nothing to say."""
        return None
