"""Configuration models of the partner side: the SMPP server and the partner accounts.

``server:`` is where partners bind (:class:`ServerSettings`); ``partners:`` lists the
accounts (:class:`PartnerSettings`). The rules of :mod:`smppgw.app.config_models` hold
here too: frozen models, unknown keys refused, ranges checked once. Rules spanning
partners (unique ``system_id``, parents that exist, no cycles, short codes owned once)
are checked on ``Config``.

Passwords are never in the config: ``password_hash`` is what ``smppgw hash-password``
prints. Content rules are compiled here with the very code that runs them
(:mod:`smppgw.gateway.content`), so a template or regex that would fail at run time
fails ``check-config`` instead, at its own key (``partners[2].content.templates[0]``).

Import order: this module reuses ``Endpoint`` and ``EndpointField`` from
:mod:`smppgw.app.config_models`, which in turn needs these models for ``Config``; that
module imports this one at its end, so either may be imported first.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from pathlib import Path  # noqa: TC003 (pydantic reads the annotations at run time)
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from smppgw.app.config_base import Endpoint, EndpointField
from smppgw.gateway.auth import check_password_hash
from smppgw.gateway.content import (
    ContentPolicyError,
    compile_keyword,
    compile_pattern,
    compile_template,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "Billing",
    "ContentPolicy",
    "Moderation",
    "OnViolation",
    "PartnerSettings",
    "ServerSettings",
    "ServerTlsSettings",
    "TrafficClass",
    "partner_map",
]

#: SMPP 3.4 5.2.1: system_id is a C-octet string of 16 octets with the NUL.
_SYSTEM_ID = re.compile(r"[\x21-\x7e]{1,15}", re.ASCII)
#: source_addr is 21 octets with the NUL.
MAX_ADDRESS = 20
_SHORT_CODE = re.compile(r"[0-9]{1,15}", re.ASCII)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class OnViolation(enum.StrEnum):
    """What happens to a message that breaks its partner's content policy."""

    REJECT = "reject"  # answered ESME_RX_P_APPN
    HOLD = "hold"  # accepted, journaled, held for a moderator


class Moderation(enum.StrEnum):
    """Which messages wait for a moderator before they are sent."""

    NONE = "none"
    ALL = "all"
    UNMATCHED = "unmatched"  # those that match none of the partner's templates


class TrafficClass(enum.StrEnum):
    """Transactional traffic (OTPs, notifications) goes in the priority lane."""

    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class Billing(enum.StrEnum):
    PREPAID = "prepaid"
    POSTPAID = "postpaid"
    #: No quota: for the operator's own applications and trials. Messages are still
    #: journaled and counted in reports, but no order is needed or charged.
    UNMETERED = "unmetered"


def _rule(compile_fn: Callable[[str], object]) -> AfterValidator:
    def check(value: str) -> str:
        try:
            compile_fn(value)
        except ContentPolicyError as exc:
            raise ValueError(str(exc)) from None
        return value

    return AfterValidator(check)


def _unique(values: Iterable[str], what: str, key: Callable[[str], str] = str) -> None:
    seen: set[str] = set()
    for value in values:
        k = key(value)
        if k in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(k)


class ContentPolicy(_Model):
    """A partner's content rules (see :mod:`smppgw.gateway.content` for the matching)."""

    #: Registered templates; ``{name}`` is a slot for any text. Empty: no template rule.
    templates: tuple[Annotated[str, _rule(compile_template)], ...] = ()
    #: Words and phrases refused anywhere in a message (case and accents ignored).
    block_keywords: tuple[Annotated[str, _rule(compile_keyword)], ...] = ()
    #: Regexes refused anywhere in a message (case ignored).
    block_patterns: tuple[Annotated[str, _rule(compile_pattern)], ...] = ()
    on_violation: OnViolation = OnViolation.REJECT


class ServerTlsSettings(_Model):
    """A second listener speaking SMPP over TLS."""

    listen: EndpointField = Endpoint("0.0.0.0", 3550)
    cert_file: Path
    key_file: Path

    @field_validator("cert_file", "key_file")
    @classmethod
    def _readable(cls, value: Path) -> Path:
        if not os.access(value, os.R_OK):
            raise ValueError(f"cannot read {str(value)!r}")
        return value


class ServerSettings(_Model):
    """The SMPP server partners bind to."""

    enabled: bool = True
    listen: EndpointField = Endpoint("0.0.0.0", 2775)
    tls: ServerTlsSettings | None = None
    #: Outstanding deliver_sm per partner session.
    window: int = Field(default=64, ge=1, le=1024)
    max_sessions: int = Field(default=1000, ge=1, le=100_000)
    #: Seconds without a PDU from the partner before its session is closed.
    idle_timeout: float = Field(default=300.0, gt=0, le=86_400)
    #: Seconds a connection may stay without a successful bind before it is closed.
    bind_timeout: float = Field(default=30.0, gt=0, le=3600)
    enquire_link_interval: float = Field(default=30.0, gt=0, le=3600)
    response_timeout: float = Field(default=10.0, gt=0, le=600)
    #: Messages waiting for a carrier above which submits get ESME_RMSGQFUL.
    max_pending_messages: int = Field(default=100_000, ge=1, le=100_000_000)
    #: Messages waiting for their partner's schedule_delivery_time, counted apart from
    #: max_pending_messages (a campaign for tomorrow must not stop today's traffic).
    #: Those due more than a minute ahead wait as their id only, 8 bytes each
    #: (``gateway/far_ahead.py``), so a million is a few megabytes.
    max_scheduled_messages: int = Field(default=1_000_000, ge=0, le=100_000_000)
    #: Marketing messages waiting for a carrier above which marketing partners' submits
    #: get ESME_RTHROTTLED (they retry later); transactional partners are not held back.
    #: A batch is then taken about as fast as the carriers send it, instead of at the
    #: gateway's full speed, which left OTPs waiting for the CPU. 0: no such limit.
    marketing_backlog: int = Field(default=0, ge=0, le=100_000_000)
    #: The country code of national numbers (a leading 0, or destination TON 2): the
    #: opt-out list keeps international digits, so that "0912..." and "84912..." are
    #: the same subscriber.
    country_code: str = Field(default="84", pattern=r"^[1-9][0-9]{0,3}$")
    #: Failed binds from one address answered at once; later ones wait 1, 2, 4... s.
    bind_failures_before_delay: int = Field(default=3, ge=0, le=1000)
    bind_failure_delay_max: float = Field(default=30.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _tls_port(self) -> Self:
        if self.tls is not None and self.tls.listen == self.listen:
            raise ValueError(f"tls.listen is the same address as listen ({self.listen})")
        return self


def _network(value: object) -> object:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as exc:
            raise ValueError(
                f"not an IP network in CIDR form (10.0.0.0/8, 2001:db8::/32): {exc}"
            ) from None
    return value


Network = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    BeforeValidator(_network),
    PlainSerializer(str, return_type=str),
]


class PartnerSettings(_Model):
    """One partner account: how it binds, what it may send, how it is billed."""

    system_id: str
    #: ``smppgw hash-password`` output; the password itself is never configured.
    password_hash: str
    enabled: bool = True
    #: Addresses it may bind from; empty: any.
    allowed_networks: tuple[Network, ...] = ()
    max_binds: int = Field(default=4, ge=1, le=1000)
    #: Message parts a second across its binds; 0: no limit.
    tps: float = Field(default=0.0, ge=0, le=100_000)
    #: Source addresses (brandnames, short codes) it may send from; empty: any.
    sources: tuple[str, ...] = ()
    #: Short codes it owns: MO to these goes to this partner.
    short_codes: tuple[str, ...] = ()
    content: ContentPolicy = ContentPolicy()
    moderation: Moderation = Moderation.NONE
    traffic_class: TrafficClass = TrafficClass.MARKETING
    #: Whether its messages are refused to numbers on the opt-out list (``smppgw
    #: optout``); unset: a marketing partner's are, a transactional one's (OTPs) not.
    opt_out: bool | None = None
    billing: Billing = Billing.PREPAID
    #: Refused when set: a postpaid partner's credit limit is its postpaid orders' limit
    #: (``smppgw order add P --kind postpaid``); kept as a key to say so, not ignored.
    credit_limit: int = Field(default=0, ge=0)
    #: system_id of the partner it belongs to (a regional company's sub-partner).
    parent: str | None = None
    #: registered_delivery used when its submit_sm says 0; its own non-zero value wins.
    default_registered_delivery: int = Field(default=0, ge=0, le=0x1F)
    #: Most SMS one submitted message may take.
    max_message_parts: int = Field(default=10, ge=1, le=255)
    #: protocol_id values besides 0 its submits may carry, passed to the carrier (0x40 a
    #: silent SMS, 0x41-0x47 "replace short message" types, 0x7F SIM data download);
    #: any other is refused (ESME_RSUBMITFAIL), never sent as a plain SMS.
    protocol_ids: tuple[Annotated[int, Field(ge=0, le=0xFF)], ...] = ()

    @field_validator("system_id", "parent")
    @classmethod
    def _system_id(cls, value: str | None) -> str | None:
        if value is not None and _SYSTEM_ID.fullmatch(value) is None:
            raise ValueError("use 1-15 printable ASCII characters without spaces (SMPP 3.4)")
        return value

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        return check_password_hash(value)

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for source in value:
            if not 1 <= len(source) <= MAX_ADDRESS or not source.isprintable():
                raise ValueError(f"source {source!r}: use 1-{MAX_ADDRESS} printable characters")
        _unique(value, "source", str.casefold)
        return value

    @field_validator("short_codes", mode="before")
    @classmethod
    def _short_codes(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            for code in value:
                if isinstance(code, int) and not isinstance(code, bool):
                    raise ValueError(f'quote short code {code}, e.g. "8055"')
                if isinstance(code, str) and _SHORT_CODE.fullmatch(code) is None:
                    raise ValueError(f"short code {code!r}: use 1-15 digits")
            _unique([str(c) for c in value], "short code")
        return value

    @field_validator("default_registered_delivery")
    @classmethod
    def _registered_delivery(cls, value: int) -> int:
        if value & 0x03 == 0x03:
            raise ValueError("receipt bits 3 are reserved: use 0 (none), 1 (all) or 2 (failures)")
        return value

    @model_validator(mode="after")
    def _billing(self) -> Self:
        if self.credit_limit:
            raise ValueError(
                "credit_limit is not read: a postpaid partner's credit limit is the limit of"
                " its postpaid orders (smppgw order add PARTNER --kind postpaid --count N"
                " --unit-cost C: N parts at C minor units each)"
            )
        if self.parent == self.system_id:
            raise ValueError("a partner cannot be its own parent")
        return self


def partner_map(partners: Iterable[PartnerSettings]) -> dict[str, PartnerSettings]:
    """``{system_id: settings}``: what the authenticator, admission and server take."""
    return {p.system_id: p for p in partners}


def partner_problems(
    partners: tuple[PartnerSettings, ...],
) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules across partners, each problem with its location below ``Config``."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    by_id: dict[str, int] = {}
    for i, partner in enumerate(partners):
        if partner.system_id in by_id:
            problems.append(
                (("partners", i, "system_id"), f"duplicate system_id {partner.system_id!r}")
            )
        by_id.setdefault(partner.system_id, i)
    owner: dict[str, str] = {}
    for i, partner in enumerate(partners):
        for j, code in enumerate(partner.short_codes):
            if code in owner and owner[code] != partner.system_id:
                problems.append(
                    (
                        ("partners", i, "short_codes", j),
                        f"short code {code} is owned by {owner[code]!r}",
                    )
                )
            owner.setdefault(code, partner.system_id)
    parents: dict[str, str | None] = {}
    for partner in partners:  # the first of duplicates counts, as for everything else
        parents.setdefault(partner.system_id, partner.parent)
    for i, partner in enumerate(partners):
        if partner.parent is None:
            continue
        if partner.parent not in parents:
            problems.append(
                (("partners", i, "parent"), f"no partner with system_id {partner.parent!r}")
            )
            continue
        # Walk up; coming back to this partner is a cycle (reported on each member).
        seen = [partner.system_id]
        current: str | None = partner.parent
        while current is not None and current in parents and current not in seen:
            seen.append(current)
            current = parents[current]
        if current == partner.system_id:
            chain = " -> ".join([*seen, partner.system_id])
            problems.append((("partners", i, "parent"), f"parents form a cycle: {chain}"))
    return problems
