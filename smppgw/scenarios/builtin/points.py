"""Points: ``TD <code>`` credits a scratch card's points, ``DIEM`` tells the balance.

Seed 000: a member texts the code printed on the card inside a product; each code is
worth its points once, within the campaign's dates, and the reply gives the points
earned and the total. Seed 004 adds the anti-counterfeit check (a code sent again is
reported as already used, with when and how often it has been tried: a copied card shows
up as a code tried many times) and an optional instant win (a lucky code, or a draw at
fixed odds, wins a gift card sent under the brandname).

The order of the checks, and why:

1. no code typed -> ``bad_format``;
2. not a member -> ``not_registered`` (or, with ``auto_register``, go on: the member is
   made only when a code is really credited, so wrong guesses leave no junk members);
3. ``wrong_codes_per_day`` wrong codes already today -> ``too_many_wrong`` without even
   looking the code up (the limit is what makes guessing codes by SMS pointless);
4. unknown code (or of another campaign) -> ``unknown_code``, counted as a wrong one;
5. used code -> ``already_used_by_you`` (the member's own) or ``already_used``; the
   query is recorded either way (checked before the dates, so the anti-counterfeit
   answer holds after the campaign too);
6. outside the campaign's or the code's own dates -> ``expired``;
7. mark the code used, credit the points, perhaps win -> ``credited``.

A code is typed as the words after the keyword without their spaces and upper-cased
(``TD abcd 1234`` is ``ABCD1234``): cards print codes in groups.

Settings::

    settings:
      wrong_codes_per_day: 5
      auto_register: false
      member_id: {pattern: "{digits:8}"}    # for auto-registered members
      code_campaigns: [TET2026]              # only codes of these campaigns (default: any)
      instant_win: {odds: 0.01, gift_type: CARD10, gift_name: "the 10.000d"}
      # or:   {codes: [ABC123, XYZ999], gift_type: CARD10}

Also :meth:`Points.statement`: the month-end balance SMS of every member whose points
moved in a month; the scheduler calls it, or feeds the event ``statement`` (exactly once
per event key, like every event step).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smppgw.scenarios.builtin.registration import MemberIdSettings, register_member
from smppgw.scenarios.handler import Context, Event, Extra, Handler, Mo, Outcome
from smppgw.store.loyalty import (
    Code,
    add_wrong_code,
    find_code,
    mark_code_used,
    members_with_activity,
    record_code_query,
    record_event,
    take_free_gift,
    wrong_codes,
)
from smppgw.store.members import Member, add_points, find_member

if TYPE_CHECKING:
    from smppgw.scenarios.config import ScenarioFile

__all__ = ["InstantWin", "Points", "PointsSettings", "code_of", "local_text"]

log = structlog.get_logger("smppgw.scenarios.points")


class InstantWin(BaseModel):
    """Seed 004's lucky draw: listed winning ``codes`` or a chance of ``odds`` per credit;
    a win takes a free gift of ``gift_type`` (none left: no win, and it is logged)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    codes: tuple[str, ...] = ()
    odds: float | None = Field(default=None, ge=0.0, le=1.0)
    gift_type: str
    gift_name: str | None = None

    @field_validator("codes")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(code_of((c,)) for c in value)

    @model_validator(mode="after")
    def _one_way(self) -> InstantWin:
        if bool(self.codes) == (self.odds is not None):
            raise ValueError("instant_win needs either codes or odds (not both)")
        return self


class PointsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    wrong_codes_per_day: int = Field(default=5, ge=1)
    auto_register: bool = False
    member_id: MemberIdSettings = MemberIdSettings()
    code_campaigns: tuple[str, ...] = ()
    instant_win: InstantWin | None = None


def code_of(args: tuple[str, ...]) -> str:
    """The code typed: the words joined without spaces, upper-cased (see the module)."""
    return "".join("".join(args).split()).upper()


def local_text(ctx: Context, at: float) -> str:
    """A time as the subscriber reads it: ``14:05 21/09/2026`` in the operator's zone."""
    return datetime.fromtimestamp(at, timezone(ctx.utc_offset)).strftime("%H:%M %d/%m/%Y")


class Points(Handler):
    """See the module docstring."""

    Settings = PointsSettings
    commands = frozenset({"credit", "balance"})
    events = frozenset({"statement"})
    default_replies = {
        "credited": (
            "Ban duoc cong {points} diem tu ma {code}. Tong diem hien tai: {balance}."
            " Ma hoi vien: {member_id}."
        ),
        "unknown_code": "Ma {code} khong dung. Vui long kiem tra lai ma tren the cao.",
        "already_used": "Ma {code} da duoc su dung luc {used_at} va da duoc kiem tra {tries} lan.",
        "already_used_by_you": (
            "Ma {code} ban da tich diem luc {used_at}, moi ma chi tich duoc mot lan."
            " Tong diem hien tai: {balance}."
        ),
        "expired": "Ma {code} khong con trong thoi gian tich diem cua chuong trinh.",
        "not_registered": (
            "So {msisdn} chua dang ky hoi vien. Vui long dang ky truoc khi tich diem."
        ),
        "too_many_wrong": (
            "Ban da nhap sai ma {limit} lan hom nay. Vui long thu lai vao ngay mai."
        ),
        "bad_format": "Sai cu phap. Soan: {syntax} gui {short_code}.",
        "balance": "Ma hoi vien {member_id}: tong diem hien tai {points}.",
        "won": "Chuc mung! Ma {code} trung thuong {gift}. So serial: {serial}, ma PIN: {pin}.",
        "statement": (
            "Tong diem tich luy cua hoi vien {member_id} den het thang {month}: {points} diem."
        ),
    }

    def __init__(self, scenario: ScenarioFile, settings: PointsSettings) -> None:
        super().__init__(scenario, settings)
        self.id_format = settings.member_id.format()
        spec = scenario.commands.get("credit")
        self.syntax = f"{spec.keywords[0] if spec is not None else 'TD'} <ma the>"

    def handle(self, ctx: Context, mo: Mo) -> Outcome:
        member = find_member(ctx.conn, mo.msisdn)
        if mo.command == "balance":
            if member is None:
                return Outcome("not_registered", {"msisdn": mo.msisdn})
            return Outcome(
                "balance",
                {"points": member.points, "member_id": member.member_id},
                member_id=member.member_id,
            )
        return self.credit(ctx, mo, member)

    def credit(self, ctx: Context, mo: Mo, member: Member | None) -> Outcome:
        """``TD <code>``: the checks of the module docstring, in its order."""
        settings: PointsSettings = self.settings
        member_id = None if member is None else member.member_id
        if not mo.args:
            return Outcome("bad_format", {"syntax": self.syntax, "short_code": mo.short_code})
        if member is None and not settings.auto_register:
            return Outcome("not_registered", {"msisdn": mo.msisdn})
        limit = settings.wrong_codes_per_day
        if wrong_codes(ctx.conn, mo.msisdn, ctx.local_day) >= limit:
            return Outcome("too_many_wrong", {"limit": limit}, member_id=member_id)
        typed = code_of(mo.args)
        values: dict[str, Any] = {"code": typed, "member_id": member_id or ""}
        code = find_code(ctx.conn, typed)
        if code is None or (
            settings.code_campaigns and code.campaign not in settings.code_campaigns
        ):
            wrong = add_wrong_code(ctx.conn, mo.msisdn, ctx.local_day)
            return Outcome(
                "unknown_code", {**values, "wrong": wrong, "limit": limit}, member_id=member_id
            )
        if code.used_by is not None:
            tries = record_code_query(ctx.conn, code.code, mo.msisdn, ctx.now)
            used_at = local_text(ctx, code.used_at or ctx.now)
            values |= {"used_at": used_at, "tries": tries}
            if member is not None and code.used_by == member.member_id:
                values["balance"] = member.points
                return Outcome("already_used_by_you", values, member_id=member_id)
            log.info("used code sent again", code=code.code, tries=tries, msisdn=mo.msisdn)
            return Outcome("already_used", values, member_id=member_id)
        if not (ctx.in_campaign() and code.valid_at(ctx.now)):
            return Outcome("expired", values, member_id=member_id)
        return self._credit(ctx, mo, member, code)

    def _credit(self, ctx: Context, mo: Mo, member: Member | None, code: Code) -> Outcome:
        if member is None:  # auto_register (checked by the caller)
            member, _ = register_member(
                ctx.conn, self.id_format, ctx.rng, msisdn=mo.msisdn, fields={}, now=ctx.now
            )
        if not mark_code_used(ctx.conn, code.code, member.member_id, ctx.now):
            # Cannot happen in the single writer; refuse rather than credit twice.
            raise RuntimeError(f"code {code.code} was used under our feet")
        balance = add_points(ctx.conn, member.member_id, code.points, "code", code.code, ctx.now)
        assert balance is not None  # a credit never goes below zero
        outcome = Outcome(
            "credited",
            {
                "points": code.points,
                "balance": balance,
                "code": code.code,
                "member_id": member.member_id,
            },
            member_id=member.member_id,
        )
        won = self._instant_win(ctx, member, code)
        if won is not None:
            outcome.extras.append(won)
        return outcome

    def _instant_win(self, ctx: Context, member: Member, code: Code) -> Extra | None:
        """Seed 004's lucky draw on a credited code; the ``won`` MT, or None."""
        win = self.settings.instant_win
        if win is None:
            return None
        lucky = code.code in win.codes if win.codes else ctx.rng.random() < (win.odds or 0.0)
        if not lucky:
            return None
        gift = take_free_gift(ctx.conn, win.gift_type, member.member_id, ctx.now)
        facts = {"code": code.code, "member_id": member.member_id, "gift_type": win.gift_type}
        if gift is None:
            log.warning("instant win but no gift left: no win", **facts)
            record_event(ctx.conn, "instant_win_no_stock", member.msisdn, facts, ctx.now)
            return None
        log.info("instant win", serial=gift.serial, **facts)
        record_event(ctx.conn, "instant_win", member.msisdn, {**facts, "gift_id": gift.id}, ctx.now)
        return Extra(
            "won",
            {
                "gift": win.gift_name or win.gift_type,
                "serial": gift.serial,
                "pin": gift.pin or "",
                "code": code.code,
                "member_id": member.member_id,
            },
        )

    def on_event(self, ctx: Context, event: Event) -> Outcome | None:
        """``statement`` (data ``{"month": "YYYY-MM"}``, default the month before
        ``now``): the month-end SMS as one event step, so a scheduler that fires twice
        with the same key (``statement-2026-09``) sends them once."""
        if event.kind != "statement":
            return None
        month = str(event.data.get("month") or "")
        if not month:
            first = ctx.local_time.replace(day=1)
            month = (first - timedelta(days=1)).strftime("%Y-%m")
        extras = self.statement(ctx, month)
        log.info("monthly statement", month=month, members=len(extras))
        return Outcome("statement", {"month": month}, extras=extras, reply=False)

    def statement(self, ctx: Context, month: str) -> list[Extra]:
        """The month-end balance SMS (template ``statement``) of every member whose points
        moved in ``month`` (``YYYY-MM``, local time), each to the member's number; the
        balance is the one at the end of that month.

        Raises:
            ValueError: ``month`` is not ``YYYY-MM``.
        """
        zone = timezone(ctx.utc_offset)
        first = datetime.strptime(month, "%Y-%m").replace(tzinfo=zone)
        after = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
        shown = first.strftime("%m/%Y")
        return [
            Extra(
                "statement",
                {"points": line.balance, "member_id": line.member_id, "month": shown},
                to=line.msisdn,
            )
            for line in members_with_activity(ctx.conn, first.timestamp(), after.timestamp())
        ]
