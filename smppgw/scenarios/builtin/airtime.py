"""Airtime advance (seed 003): borrow credit now, pay it back at the next top-up.

A subscriber registers (``UNGDK``), then asks for an advance (``UNG 10000``); the
amount allowed follows the average spend of the last three months (``arpu_3m`` in
``subscriber_profile``, imported from the operator) through the ``tiers``. One advance
is outstanding at a time, and it is owed with its fee until top-ups have paid it back.
``UNGTAM`` pauses (no automatic advance, no manual one), ``UNGDK`` again resumes,
``UNGHUY`` cancels (the subscriber opted out: no more offers until they register again;
a debt is still recovered), ``UNGTC`` tells the state, the debt and the limit.

The operator's systems send two events:

* ``low_balance`` (``balance``): a registered, active, eligible subscriber gets the
  automatic advance; an eligible one who has not registered gets an offer (at most one
  per ``offer_interval_hours``); anyone else, nothing.
* ``topup`` (``amount``): the outstanding advance and its fee are recovered from it (in
  part when it is smaller) through the charging adapter, and the subscriber is told.

Money moves through a charging adapter (``charging:``, see
:mod:`smppgw.scenarios.charging`) in the step's own transaction, so the advance row, the
balance and the reply commit together, exactly once.

Settings (defaults shown)::

    settings:
      tiers:                         # ARPU of the last 3 months -> largest advance
        - {min_arpu: 30000, max_amount: 10000}
        - {min_arpu: 50000, max_amount: 20000}
        - {min_arpu: 100000, max_amount: 50000}
      amounts: [10000, 20000, 50000] # what may be asked for
      fee: {percent: 0, fixed: 0}    # fee = fixed + percent of the amount (rounded)
      advance_requires_registration: true
      auto_advance: true             # on low balance, for registered active subscribers
      auto_advance_amount: null      # null: the largest amount the tier allows
      low_balance_threshold: 5000    # an event with a balance at or above is ignored
      offer_on_low_balance: true
      offer_interval_hours: 24
      charging: ledger               # or {http: {url: "http://..."}}
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smppgw.scenarios.charging import ChargingSettings, make_charging
from smppgw.scenarios.handler import Context, Event, Handler, Mo, Outcome
from smppgw.store import airtime as db

__all__ = ["AirtimeAdvance", "AirtimeSettings", "Fee", "Tier", "parse_amount"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Model):
    min_arpu: int = Field(ge=0)
    max_amount: int = Field(gt=0)


class Fee(_Model):
    percent: Decimal = Field(default=Decimal(0), ge=0, le=100)
    fixed: int = Field(default=0, ge=0)

    def of(self, amount: int) -> int:
        share = (Decimal(amount) * self.percent / 100).to_integral_value(ROUND_HALF_UP)
        return self.fixed + int(share)


class StateNames(_Model):
    """The words ``{state}`` takes in the look-up reply."""

    active: str = "dang su dung"
    paused: str = "tam dung"
    unregistered: str = "chua dang ky"


class AirtimeSettings(_Model):
    tiers: tuple[Tier, ...] = Field(
        default=(
            Tier(min_arpu=30000, max_amount=10000),
            Tier(min_arpu=50000, max_amount=20000),
            Tier(min_arpu=100000, max_amount=50000),
        ),
        min_length=1,
    )
    amounts: tuple[int, ...] = Field(default=(10000, 20000, 50000), min_length=1)
    fee: Fee = Fee()
    advance_requires_registration: bool = True
    auto_advance: bool = True
    auto_advance_amount: int | None = None
    low_balance_threshold: int = Field(default=5000, ge=0)
    offer_on_low_balance: bool = True
    offer_interval_hours: float = Field(default=24, ge=0)
    charging: ChargingSettings = "ledger"
    state_names: StateNames = StateNames()
    thousands_separator: str = "."

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        ordered = tuple(sorted(tiers, key=lambda t: t.min_arpu))
        if len({t.min_arpu for t in ordered}) != len(ordered):
            raise ValueError("two tiers have the same min_arpu")
        return ordered

    @field_validator("amounts")
    @classmethod
    def _amounts(cls, amounts: tuple[int, ...]) -> tuple[int, ...]:
        if any(a <= 0 for a in amounts):
            raise ValueError("amounts are positive")
        return tuple(sorted(set(amounts)))

    @model_validator(mode="after")
    def _auto(self) -> AirtimeSettings:
        if self.auto_advance_amount is not None and self.auto_advance_amount not in self.amounts:
            raise ValueError(f"auto_advance_amount is not one of amounts {list(self.amounts)}")
        return self

    def max_for(self, arpu: int) -> int | None:
        """The largest advance ``arpu`` allows; None: not eligible (below every tier)."""
        allowed = [t.max_amount for t in self.tiers if arpu >= t.min_arpu]
        return allowed[-1] if allowed else None

    def largest_within(self, limit: int) -> int | None:
        fitting = [a for a in self.amounts if a <= limit]
        return fitting[-1] if fitting else None


_AMOUNT = re.compile(r"^(\d+)(k?)(?:d|đ|vnd)?$")


def parse_amount(text: str) -> int | None:
    """``10000``, ``10.000``, ``10,000``, ``10k``, ``10000d`` -> 10000; None otherwise."""
    cleaned = text.strip().lower().replace(".", "").replace(",", "")
    match = _AMOUNT.match(cleaned)
    if match is None:
        return None
    return int(match.group(1)) * (1000 if match.group(2) else 1)


class AirtimeAdvance(Handler):
    """See the module docstring."""

    Settings = AirtimeSettings
    commands = frozenset({"register", "cancel", "pause", "advance", "lookup"})
    events = frozenset({"topup", "low_balance"})
    default_replies = {
        "registered": "Ban da dang ky dich vu Ung tien thanh cong. Muc ung toi da {max}d."
        " Soan {advance_kw} <so tien> gui {short_code} de ung.",
        "registered_not_eligible": "Ban da dang ky dich vu Ung tien. Hien thue bao chua du"
        " dieu kien ung (tieu dung TB 3 thang tu {min_arpu}d).",
        "already_registered": "Ban da dang ky dich vu Ung tien truoc do. Muc ung toi da {max}d.",
        "resumed": "Dich vu Ung tien da hoat dong tro lai. Muc ung toi da {max}d.",
        "cancelled": "Ban da huy dich vu Ung tien.",
        "cancelled_owing": "Ban da huy dich vu Ung tien. Khoan no {owed}d se duoc tru"
        " khi ban nap tien.",
        "paused": "Dich vu Ung tien da tam dung. Soan {register_kw} gui {short_code} de dung lai.",
        "is_paused": "Dich vu Ung tien dang tam dung. Soan {register_kw} gui {short_code}"
        " de dung lai.",
        "not_registered": "Ban chua dang ky dich vu Ung tien. Soan {register_kw} gui"
        " {short_code} de dang ky.",
        "opted_out": "Ban da huy dich vu Ung tien. Soan {register_kw} gui {short_code}"
        " de dang ky lai.",
        "not_eligible": "Rat tiec, thue bao chua du dieu kien ung tien (tieu dung TB"
        " 3 thang tu {min_arpu}d).",
        "amount_too_high": "Ban chi duoc ung toi da {max}d. Soan {advance_kw} <so tien>"
        " gui {short_code}.",
        "bad_amount": "So tien khong hop le. Cac muc ung: {amounts}. Vi du: {advance_kw}"
        " {example} gui {short_code}.",
        "outstanding": "Ban con khoan ung chua thanh toan {owed}d. Vui long nap tien"
        " truoc khi ung tiep.",
        "advanced": "Ban da duoc ung {amount}d, phi {fee}d. So no {owed}d se duoc tru"
        " khi nap tien.",
        "auto_advanced": "So du thap: ban da duoc ung tu dong {amount}d, phi {fee}d."
        " So no {owed}d se duoc tru khi nap tien.",
        "offer": "So du tai khoan sap het. Ban duoc ung toi {max}d. Soan {register_kw}"
        " gui {short_code} de dang ky dich vu Ung tien.",
        "lookup": "Dich vu Ung tien: {state}. So no: {owed}d. Muc ung toi da: {max}d.",
        "recovered": "Ban da nap {topup}d. Da tru {recovered}d tien ung va phi."
        " Ban da thanh toan het khoan ung.",
        "recovered_part": "Ban da nap {topup}d. Da tru {recovered}d tien ung va phi."
        " So no con lai: {owed}d.",
    }

    def __init__(self, scenario: Any, settings: AirtimeSettings) -> None:
        super().__init__(scenario, settings)
        self.charging = make_charging(settings.charging)
        self.keywords = {
            command: (spec.keywords[0] if (spec := scenario.commands.get(command)) else default)
            for command, default in (("register", "UNGDK"), ("advance", "UNG"))
        }

    # -- helpers ---------------------------------------------------------------------

    @property
    def _settings(self) -> AirtimeSettings:
        settings: AirtimeSettings = self.settings
        return settings

    def money(self, amount: int) -> str:
        """``10000`` -> ``10.000`` (the operator's thousands separator)."""
        return f"{amount:,}".replace(",", self._settings.thousands_separator)

    def _common(self, short_code: str | None) -> dict[str, Any]:
        s = self._settings
        example = s.amounts[0]
        return {
            "short_code": short_code or self.scenario.short_codes[0],
            "register_kw": self.keywords["register"],
            "advance_kw": self.keywords["advance"],
            "min_arpu": self.money(s.tiers[0].min_arpu),
            "amounts": ", ".join(self.money(a) for a in s.amounts),
            "example": example,
        }

    def _outcome(self, name: str, short_code: str | None, **values: Any) -> Outcome:
        money = {k: self.money(v) if isinstance(v, int) else v for k, v in values.items()}
        return Outcome(name, {**self._common(short_code), **money})

    def _lend(
        self, ctx: Context, msisdn: str, amount: int, name: str, short_code: str | None
    ) -> Outcome:
        """Make the advance and credit it (the caller checked every rule)."""
        fee = self._settings.fee.of(amount)
        try:
            advance = db.insert_advance(ctx.conn, msisdn, amount, fee, ctx.now)
        except db.AlreadyOutstanding:
            owing = db.outstanding_advance(ctx.conn, msisdn)
            return self._outcome("outstanding", short_code, owed=owing.owed if owing else 0)
        self.charging.credit(
            ctx.conn,
            msisdn,
            amount,
            f"advance:{advance.id}:credit",
            advance_id=advance.id,
            now=ctx.now,
        )
        return self._outcome(name, short_code, amount=amount, fee=fee, owed=advance.owed)

    # -- commands --------------------------------------------------------------------

    def handle(self, ctx: Context, mo: Mo) -> Outcome:
        command = getattr(self, f"_cmd_{mo.command}")
        outcome: Outcome = command(ctx, mo)
        return outcome

    def _cmd_register(self, ctx: Context, mo: Mo) -> Outcome:
        profile = db.get_profile(ctx.conn, mo.msisdn)
        arpu = profile.arpu_3m if profile else 0
        limit = self._settings.max_for(arpu) or 0
        if profile is not None and profile.registered and not profile.opted_out:
            if profile.paused:
                db.set_flags(ctx.conn, mo.msisdn, ctx.now, paused=False)
                return self._outcome("resumed", mo.short_code, max=limit)
            return self._outcome("already_registered", mo.short_code, max=limit)
        db.set_flags(ctx.conn, mo.msisdn, ctx.now, registered=True, paused=False, opted_out=False)
        if not limit:
            return self._outcome("registered_not_eligible", mo.short_code)
        return self._outcome("registered", mo.short_code, max=limit)

    def _cmd_cancel(self, ctx: Context, mo: Mo) -> Outcome:
        profile = db.get_profile(ctx.conn, mo.msisdn)
        if profile is None or not profile.registered:
            return self._outcome("not_registered", mo.short_code)
        db.set_flags(ctx.conn, mo.msisdn, ctx.now, registered=False, paused=False, opted_out=True)
        owing = db.outstanding_advance(ctx.conn, mo.msisdn)
        if owing is not None:
            return self._outcome("cancelled_owing", mo.short_code, owed=owing.owed)
        return self._outcome("cancelled", mo.short_code)

    def _cmd_pause(self, ctx: Context, mo: Mo) -> Outcome:
        profile = db.get_profile(ctx.conn, mo.msisdn)
        if profile is None or not profile.registered:
            return self._outcome("not_registered", mo.short_code)
        if profile.paused:
            return self._outcome("is_paused", mo.short_code)
        db.set_flags(ctx.conn, mo.msisdn, ctx.now, paused=True)
        return self._outcome("paused", mo.short_code)

    def _cmd_advance(self, ctx: Context, mo: Mo) -> Outcome:
        s = self._settings
        code = mo.short_code
        profile = db.get_profile(ctx.conn, mo.msisdn)
        if profile is not None and profile.opted_out:
            return self._outcome("opted_out", code)
        registered = profile is not None and profile.registered
        if s.advance_requires_registration and not registered:
            return self._outcome("not_registered", code)
        if profile is not None and profile.paused:
            return self._outcome("is_paused", code)
        owing = db.outstanding_advance(ctx.conn, mo.msisdn)
        if owing is not None:
            return self._outcome("outstanding", code, owed=owing.owed)
        limit = s.max_for(profile.arpu_3m if profile else 0)
        if limit is None:
            return self._outcome("not_eligible", code)
        if not mo.args:
            amount = s.largest_within(limit)
            if amount is None:  # the tier allows less than the smallest amount
                return self._outcome("amount_too_high", code, max=limit)
        else:
            parsed = parse_amount(" ".join(mo.args))
            if parsed is None or parsed not in s.amounts:
                return self._outcome("bad_amount", code)
            if parsed > limit:
                return self._outcome("amount_too_high", code, max=limit)
            amount = parsed
        return self._lend(ctx, mo.msisdn, amount, "advanced", code)

    def _cmd_lookup(self, ctx: Context, mo: Mo) -> Outcome:
        s = self._settings
        profile = db.get_profile(ctx.conn, mo.msisdn)
        owing = db.outstanding_advance(ctx.conn, mo.msisdn)
        limit = s.max_for(profile.arpu_3m if profile else 0) or 0
        if profile is None or not profile.registered:
            state = s.state_names.unregistered
        elif profile.paused:
            state = s.state_names.paused
        else:
            state = s.state_names.active
        owed = owing.owed if owing else 0
        return self._outcome("lookup", mo.short_code, owed=owed, max=limit, state=state)

    # -- events ----------------------------------------------------------------------

    def on_event(self, ctx: Context, event: Event) -> Outcome | None:
        if event.kind == "topup":
            return self._topup(ctx, event)
        if event.kind == "low_balance":
            return self._low_balance(ctx, event)
        return None

    def _low_balance(self, ctx: Context, event: Event) -> Outcome | None:
        s = self._settings
        balance = _int(event.data.get("balance"))
        profile = db.get_profile(ctx.conn, event.msisdn)
        if profile is None:
            return None
        if balance is not None:
            db.set_profile_balance(ctx.conn, event.msisdn, balance, ctx.now)
            if balance >= s.low_balance_threshold:
                return None
        limit = s.max_for(profile.arpu_3m)
        if profile.opted_out or limit is None:
            return None
        if db.outstanding_advance(ctx.conn, event.msisdn) is not None:
            return None
        if profile.registered:
            if profile.paused or not s.auto_advance:
                return None
            amount = s.largest_within(min(limit, s.auto_advance_amount or limit))
            if amount is None:
                return None
            return self._lend(ctx, event.msisdn, amount, "auto_advanced", None)
        if not s.offer_on_low_balance:
            return None
        last = db.last_offer_at(ctx.conn, event.msisdn)
        if last is not None and ctx.now - last < s.offer_interval_hours * 3600:
            return None
        db.record_offer(ctx.conn, event.msisdn, limit, ctx.now)
        return self._outcome("offer", None, max=limit)

    def _topup(self, ctx: Context, event: Event) -> Outcome | None:
        topup = _int(event.data.get("amount"))
        if topup is None or topup <= 0:
            return None
        ref = f"topup:{event.key or int(ctx.now * 1000)}"
        self.charging.note_topup(ctx.conn, event.msisdn, topup, ref, now=ctx.now)
        owing = db.outstanding_advance(ctx.conn, event.msisdn)
        if owing is None:
            return None
        wanted = min(topup, owing.owed)
        charged = self.charging.debit(
            ctx.conn,
            event.msisdn,
            wanted,
            f"advance:{owing.id}:recover:{owing.recovered}",
            advance_id=owing.id,
            now=ctx.now,
        )
        if charged.amount <= 0:
            return None
        taken, after = db.apply_recovery(ctx.conn, owing.id, charged.amount, ctx.now)
        name = "recovered" if after.state == "recovered" else "recovered_part"
        return self._outcome(name, None, topup=topup, recovered=taken, owed=after.owed)


def _int(value: Any) -> int | None:
    """An event's number (JSON int or digit string); None when absent or not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
