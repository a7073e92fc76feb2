"""Registration: ``DK <name> <province>`` makes the subscriber a member with a random ID.

Seed 000: the fields to type are the operator's (fewer is better: every extra field is a
chance to get the syntax wrong); the member ID is random in the operator's format (a
province prefix, for example), generated only when someone registers; the registration
time is kept. A second registration from the same number is answered with the existing
ID (and does not change the member). Members also come from imports
(``smppgw import members``).

Settings::

    settings:
      fields: [name, province]     # what follows the keyword, in order
      rest_goes_to: name           # the field that takes the extra words ("Nguyen Van An")
      separator: null              # or "*": "DK Nguyen Van An*Ha Noi"
      required: [name]
      member_id:
        pattern: "{province}{digits:6}"
        provinces: {"ha noi": HN, "hn": HN, "ho chi minh": SG, "hcm": SG}
        default_province: VN
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from smppgw.scenarios.handler import Context, Handler, Mo, Outcome
from smppgw.scenarios.member_id import MemberIdFormat
from smppgw.store.members import Member, find_member, insert_member

if TYPE_CHECKING:
    import random
    import sqlite3

__all__ = ["MemberIdSettings", "Registration", "RegistrationSettings", "register_member"]

#: Tries at drawing a free member ID before giving up (the pattern is nearly full).
ID_TRIES = 20


class MemberIdSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = "{digits:8}"
    provinces: dict[str, str] = Field(default_factory=dict)
    default_province: str = ""

    def format(self) -> MemberIdFormat:
        return MemberIdFormat(self.pattern, self.provinces, self.default_province)

    @model_validator(mode="after")
    def _usable(self) -> MemberIdSettings:
        self.format()  # raises PatternError (a ValueError) with the reason
        return self


class RegistrationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[str, ...] = ("name", "province")
    rest_goes_to: str | None = "name"
    separator: str | None = None
    required: tuple[str, ...] = ("name",)
    member_id: MemberIdSettings = MemberIdSettings()

    @model_validator(mode="after")
    def _known(self) -> RegistrationSettings:
        for name in (*self.required, *([self.rest_goes_to] if self.rest_goes_to else [])):
            if name not in self.fields:
                raise ValueError(f"{name!r} is not one of fields {list(self.fields)}")
        return self


def parse_fields(settings: RegistrationSettings, args: tuple[str, ...]) -> dict[str, str]:
    """The typed words as named fields (see the module docstring); missing ones absent."""
    names = settings.fields
    if settings.separator:
        values = [v.strip() for v in " ".join(args).split(settings.separator)]
        head, tail = values[: len(names) - 1], values[len(names) - 1 :]
        values = [*head, settings.separator.join(tail)]
    else:
        words = list(args)
        extra = len(words) - len(names)
        if extra > 0 and settings.rest_goes_to is not None:
            at = names.index(settings.rest_goes_to)
            words[at : at + extra + 1] = [" ".join(words[at : at + extra + 1])]
        elif extra > 0:
            words[len(names) - 1 :] = [" ".join(words[len(names) - 1 :])]
        values = words
    return {name: value for name, value in zip(names, values, strict=False) if value}


def register_member(
    conn: sqlite3.Connection,
    fmt: MemberIdFormat,
    rng: random.Random,
    *,
    msisdn: str,
    fields: dict[str, Any],
    now: float,
) -> tuple[Member, bool]:
    """The member for ``msisdn``, made now if there is none: ``(member, created)``.

    Also used by the points scenario's auto-registration.

    Raises:
        RuntimeError: no free ID in :data:`ID_TRIES` draws (widen the pattern).
    """
    existing = find_member(conn, msisdn)
    if existing is not None:
        return existing, False
    name = fields.get("name")
    province = fields.get("province")
    others = {k: v for k, v in fields.items() if k not in ("name", "province")}
    for _ in range(ID_TRIES):
        member_id = fmt.new(rng, province)
        if insert_member(
            conn,
            member_id=member_id,
            msisdn=msisdn,
            name=name,
            province=province,
            fields=others,
            now=now,
        ):
            member = find_member(conn, msisdn)
            assert member is not None
            return member, True
    raise RuntimeError(f"no free member ID in {ID_TRIES} draws of {fmt.pattern!r}")


class Registration(Handler):
    """See the module docstring."""

    Settings = RegistrationSettings
    commands = frozenset({"register"})
    default_replies = {
        "registered": "Chuc mung {name}! Ban da dang ky thanh cong. Ma hoi vien: {member_id}.",
        "already_registered": "So {msisdn} da dang ky truoc do. Ma hoi vien: {member_id}.",
        "bad_format": "Sai cu phap. Soan: {syntax} gui {short_code}.",
    }

    def __init__(self, scenario: Any, settings: RegistrationSettings) -> None:
        super().__init__(scenario, settings)
        self.id_format = settings.member_id.format()
        spec = scenario.commands.get("register")
        keyword = spec.keywords[0] if spec is not None else "DK"
        self.syntax = " ".join([keyword, *(f"<{f}>" for f in settings.fields)])

    def handle(self, ctx: Context, mo: Mo) -> Outcome:
        settings: RegistrationSettings = self.settings
        existing = find_member(ctx.conn, mo.msisdn)
        if existing is not None:
            return Outcome(
                "already_registered",
                {"member_id": existing.member_id, "msisdn": mo.msisdn, "name": existing.name},
                member_id=existing.member_id,
            )
        fields = parse_fields(settings, mo.args)
        if any(name not in fields for name in settings.required):
            return Outcome("bad_format", {"syntax": self.syntax, "short_code": mo.short_code})
        member, _ = register_member(
            ctx.conn, self.id_format, ctx.rng, msisdn=mo.msisdn, fields=fields, now=ctx.now
        )
        return Outcome(
            "registered",
            {"member_id": member.member_id, "msisdn": mo.msisdn, **fields},
            member_id=member.member_id,
        )
