"""Redemption: ``DOI <gift>`` turns points into a gift (a card serial and PIN by SMS).

Seed 000: the member asks for a gift, confirms, and the points are deducted from the
balance at once, never below zero; the gift is often a virtual card from an inventory
and is sent under the brandname. Deducting and assigning happen in the same step (one
transaction), so a member never pays for a gift they did not get, nor gets one unpaid,
and the inventory's guard (``assigned_to IS NULL``) never gives one serial twice.

With ``confirm: true`` ``DOI CARD50`` only asks (after checking the balance and the
stock, so the member is not asked to confirm what cannot happen) and remembers the
question for ``confirm_minutes``; ``Y`` then performs it, checking everything again (the
balance or the stock may have moved meanwhile); ``N`` drops it. ``Y`` or ``N`` with no
question open, or one that expired, get ``confirmed_nothing_pending``.

The gift typed is the words after the keyword without spaces, upper-cased, without
diacritics (``doi card 50`` is ``CARD50``); so are the keywords of ``gifts``.

Settings::

    settings:
      confirm: true
      confirm_minutes: 10
      gifts:
        CARD50: {gift_type: VT50K, cost_points: 50, name: "the cao 50.000d"}
        CARD100: {gift_type: VT100K}        # cost: the inventory's cost_points
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from smppgw.scenarios.handler import Context, Extra, Handler, Mo, Outcome
from smppgw.scenarios.keywords import normalize
from smppgw.store.loyalty import (
    Gift,
    assign_gift,
    delete_pending,
    free_gift,
    get_pending,
    put_pending,
)
from smppgw.store.members import Member, add_points, find_member

if TYPE_CHECKING:
    from smppgw.scenarios.config import ScenarioFile

__all__ = ["GiftSpec", "Redemption", "RedemptionSettings"]

log = structlog.get_logger("smppgw.scenarios.redemption")

#: The pending_confirmation action of a redemption waiting for ``Y``.
ACTION = "redeem"


class GiftSpec(BaseModel):
    """A gift a member can ask for: the inventory's ``gift_type``, its cost in points
    (None: the ``cost_points`` of the inventory row given), its name in the replies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gift_type: str
    cost_points: int | None = Field(default=None, ge=0)
    name: str | None = None


class RedemptionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gifts: dict[str, GiftSpec] = Field(min_length=1)
    confirm: bool = False
    confirm_minutes: float = Field(default=10, gt=0)

    @field_validator("gifts")
    @classmethod
    def _keywords(cls, value: dict[str, GiftSpec]) -> dict[str, GiftSpec]:
        out = {}
        for keyword, spec in value.items():
            key = gift_keyword((keyword,))
            if not key:
                raise ValueError("a gift keyword cannot be empty")
            if key in out:
                raise ValueError(f"gift {keyword!r} is given twice")
            out[key] = spec
        return out


def gift_keyword(args: tuple[str, ...]) -> str:
    """The gift typed: the words joined without spaces, upper-cased, no diacritics (as
    keywords are compared)."""
    return normalize(" ".join(args)).replace(" ", "")


class Redemption(Handler):
    """See the module docstring."""

    Settings = RedemptionSettings
    commands = frozenset({"redeem", "confirm", "cancel"})
    default_replies = {
        "redeemed": (
            "Ban da doi {gift} voi {cost} diem. Diem con lai: {points}."
            " Thong tin qua se duoc gui trong tin nhan tiep theo."
        ),
        "gift": "Qua {gift} cua ban: so serial {serial}, ma PIN {pin}. Cam on ban!",
        "confirm_needed": (
            "Ban muon doi {gift} voi {cost} diem (hien co {points} diem)?"
            " Soan Y gui {short_code} de xac nhan, N de huy, trong {minutes} phut."
        ),
        "confirmed_nothing_pending": (
            "Ban khong co yeu cau doi qua nao dang cho xac nhan (hoac yeu cau da het han)."
            " Soan {syntax} gui {short_code} de doi qua."
        ),
        "cancelled": "Ban da huy yeu cau doi {gift}. Diem cua ban van con: {points}.",
        "not_enough_points": "Ban can {cost} diem de doi {gift}, hien ban co {points} diem.",
        "out_of_stock": "Rat tiec, qua {gift} da het. Vui long chon qua khac: {gifts}.",
        "unknown_gift": "Khong co qua {gift}. Cac qua co the doi: {gifts}.",
        "not_registered": "So {msisdn} chua dang ky hoi vien. Vui long dang ky truoc khi doi qua.",
        "bad_format": "Sai cu phap. Soan: {syntax} gui {short_code}. Cac qua: {gifts}.",
    }

    def __init__(self, scenario: ScenarioFile, settings: RedemptionSettings) -> None:
        super().__init__(scenario, settings)
        spec = scenario.commands.get("redeem")
        self.syntax = f"{spec.keywords[0] if spec is not None else 'DOI'} <qua>"
        self.gift_list = ", ".join(settings.gifts)

    def handle(self, ctx: Context, mo: Mo) -> Outcome:
        base = {
            "msisdn": mo.msisdn,
            "short_code": mo.short_code,
            "syntax": self.syntax,
            "gifts": self.gift_list,
        }
        member = find_member(ctx.conn, mo.msisdn)
        if mo.command == "redeem" and not mo.args:
            return Outcome("bad_format", base)
        if member is None:
            return Outcome("not_registered", base)
        if mo.command == "redeem":
            return self.redeem(ctx, mo, member, base)
        pending = get_pending(ctx.conn, mo.msisdn, ctx.scenario.name, ctx.now)
        # An expired question is closed here too (get_pending ignores it either way).
        delete_pending(ctx.conn, mo.msisdn, ctx.scenario.name)
        if pending is None or pending.action != ACTION:
            return Outcome("confirmed_nothing_pending", base, member_id=member.member_id)
        keyword = str(pending.payload.get("gift", ""))
        if mo.command == "cancel":
            values = {**base, "gift": self._name(keyword), "points": member.points}
            return Outcome("cancelled", values, member_id=member.member_id)
        return self.perform(ctx, member, keyword, base)

    def _name(self, keyword: str) -> str:
        spec = self.settings.gifts.get(keyword)
        return keyword if spec is None or spec.name is None else spec.name

    def _check(
        self, ctx: Context, member: Member, keyword: str, base: dict[str, Any]
    ) -> tuple[Outcome | None, int, Gift | None]:
        """Whether ``keyword`` can be redeemed now: (refusal or None, cost, free gift)."""
        values = {**base, "gift": self._name(keyword), "points": member.points}
        spec = self.settings.gifts.get(keyword)
        if spec is None:
            return Outcome("unknown_gift", values, member_id=member.member_id), 0, None
        gift = free_gift(ctx.conn, spec.gift_type)
        if gift is None:
            log.warning("gift out of stock", gift_type=spec.gift_type, keyword=keyword)
            return Outcome("out_of_stock", values, member_id=member.member_id), 0, None
        cost = gift.cost_points if spec.cost_points is None else spec.cost_points
        if member.points < cost:
            values["cost"] = cost
            return Outcome("not_enough_points", values, member_id=member.member_id), cost, None
        return None, cost, gift

    def redeem(self, ctx: Context, mo: Mo, member: Member, base: dict[str, Any]) -> Outcome:
        """``DOI <gift>``: perform it, or (with ``confirm``) ask first."""
        keyword = gift_keyword(mo.args)
        if not self.settings.confirm:
            return self.perform(ctx, member, keyword, base)
        refusal, cost, _ = self._check(ctx, member, keyword, base)
        if refusal is not None:
            return refusal
        minutes = self.settings.confirm_minutes
        expires = ctx.now + minutes * 60
        put_pending(ctx.conn, mo.msisdn, ctx.scenario.name, ACTION, {"gift": keyword}, expires)
        values = {
            **base,
            "gift": self._name(keyword),
            "cost": cost,
            "points": member.points,
            "minutes": f"{minutes:g}",
        }
        return Outcome("confirm_needed", values, member_id=member.member_id)

    def perform(self, ctx: Context, member: Member, keyword: str, base: dict[str, Any]) -> Outcome:
        """Deduct the points and assign the gift, together; ``redeemed`` and the ``gift``
        MT with the serial and PIN, or the reason it cannot be done."""
        refusal, cost, gift = self._check(ctx, member, keyword, base)
        if refusal is not None:
            return refusal
        assert gift is not None
        ref = f"{gift.gift_type}:{gift.serial}"
        if not assign_gift(ctx.conn, gift.id, member.member_id, ctx.now):
            raise RuntimeError(f"gift {gift.id} was assigned under our feet")
        left = add_points(ctx.conn, member.member_id, -cost, "redeem", ref, ctx.now)
        if left is None:  # checked above in the same transaction; never half-done
            raise RuntimeError(f"balance of {member.member_id} fell under {cost}")
        name = self._name(keyword)
        log.info("gift redeemed", member_id=member.member_id, gift=keyword, cost=cost)
        return Outcome(
            "redeemed",
            {**base, "gift": name, "cost": cost, "points": left, "member_id": member.member_id},
            extras=[
                Extra(
                    "gift",
                    {
                        "gift": name,
                        "serial": gift.serial,
                        "pin": gift.pin or "",
                        "member_id": member.member_id,
                    },
                )
            ],
            member_id=member.member_id,
        )
