"""``alerts:`` in the main config: when partners and the operator are warned, and how.

::

    alerts:
      enabled: true
      check_interval: 60                 # seconds between checks
      order_thresholds: [80, 95, 100]    # percent of an order used; 100 = used up
      expiring_days: [7, 1]              # an order expires within N days
      content_rejections: {count: 10, within_hours: 24}
      operator: {emails: [noc@example.com], msisdns: ["84912000000"]}
      partner_contacts:
        acme: {emails: [ops@acme.example], msisdns: ["84913000000"]}
      smtp:
        host: smtp.example.com
        port: 587
        starttls: true
        username: smppgw
        password_env: SMPPGW_SMTP_PASSWORD
        from: smppgw@example.com
      sms: {source: ALERT}
      utc_offset: "+07:00"               # how dates read in the texts
      templates:
        quota: {sms: "Don hang {order_id} da dung {percent}%, con {remaining} SMS."}

Why the contacts live here and not on the partners: an alert's recipients are the
alert service's business; ``partner_contacts`` is keyed by ``system_id`` and checked
against the partners by :func:`alert_problems` (the daemon warns of those naming no
partner of the config or the journal: partners added from the CLI are not in the file).
The SMTP password comes from the environment only (``password_env``), is resolved during
validation (an unset variable fails ``check-config``) and is a ``SecretStr``: never in a
log line, a ``repr`` or an error message.

Templates are per alert kind (``quota``, ``used_up``, ``expiring``, ``content``), each
with ``subject``, ``body`` (mail) and ``sms``; a key left out keeps the built-in text
(``smppgw.alerts.plan.DEFAULT_TEMPLATES``). A placeholder the kind does not offer is an
error here, at its own key, not a ``{typo}`` in a partner's SMS.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from smppgw.alerts.mailer import SmtpTarget
from smppgw.alerts.plan import (
    DEFAULT_TEMPLATES,
    PLACEHOLDERS,
    AlertPlan,
    Contacts,
    Template,
    placeholders,
)
from smppgw.alerts.rules import DAY, AlertKind
from smppgw.app.scenario_models import parse_utc_offset

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "AlertSettings",
    "AlertTemplates",
    "ContactSettings",
    "ContentRuleSettings",
    "SmsSettings",
    "SmtpSettings",
    "TemplateSettings",
    "alert_problems",
]

_EMAIL = re.compile(r"[^@\s,<>\"]+@[^@\s,<>\"]+")
_MSISDN = re.compile(r"[0-9]{6,15}", re.ASCII)
_SOURCE = re.compile(r"[0-9]{1,15}|[A-Za-z0-9 ._-]{1,11}", re.ASCII)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def _env(info: ValidationInfo) -> Mapping[str, str]:
    # The loader may pass the environment in the validation context (tests do).
    context = info.context
    if isinstance(context, dict) and "env" in context:
        env: Mapping[str, str] = context["env"]
        return env
    return os.environ


class ContactSettings(_Model):
    """Who is told: mail addresses and numbers (international form, digits only)."""

    emails: tuple[str, ...] = ()
    msisdns: tuple[str, ...] = ()

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if _EMAIL.fullmatch(address) is None:
                raise ValueError(f"{address!r} is not a mail address (name@domain)")
        return value

    @field_validator("msisdns")
    @classmethod
    def _msisdns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for number in value:
            if _MSISDN.fullmatch(number) is None:
                raise ValueError(f"{number!r}: 6-15 digits with the country code (8491...)")
        return value

    def contacts(self) -> Contacts:
        return Contacts(self.emails, self.msisdns)


class ContentRuleSettings(_Model):
    """Warn after ``count`` content violations (refused or held) within the window."""

    count: int = Field(default=10, ge=1, le=1_000_000)
    within_hours: float = Field(default=24.0, gt=0, le=24 * 31)


class SmtpSettings(_Model):
    """The mail server. ``from`` is the sender address (``sender`` in code)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", hide_input_in_errors=True, populate_by_name=True
    )

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from")
    timeout: float = Field(default=10.0, gt=0, le=300)
    #: Resolved from ``password_env`` during validation; never written in the YAML.
    password: SecretStr | None = Field(default=None, exclude=True)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if _EMAIL.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not a mail address (name@domain)")
        return value

    @field_validator("password")
    @classmethod
    def _no_inline_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raise ValueError("give the password through password_env, not in the file")
        return value

    @model_validator(mode="after")
    def _resolve_password(self, info: ValidationInfo) -> Self:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("set both username and password_env, or neither")
        if self.password_env is not None:
            secret = _env(info).get(self.password_env)
            if secret is None:
                raise ValueError(f"environment variable {self.password_env} is not set")
            # The one write to a frozen model: a derived field, during its own validation.
            object.__setattr__(self, "password", SecretStr(secret))
        return self

    def target(self) -> SmtpTarget:
        return SmtpTarget(
            host=self.host,
            port=self.port,
            sender=self.sender,
            starttls=self.starttls,
            username=self.username,
            password=None if self.password is None else self.password.get_secret_value(),
            timeout=self.timeout,
        )


class SmsSettings(_Model):
    """The alert SMS: sender (a brandname or a short code) and lane (1: transactional)."""

    source: str = "ALERT"
    priority: int = Field(default=1, ge=0, le=3)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if _SOURCE.fullmatch(value) is None:
            raise ValueError("up to 11 letters/digits (a brandname) or up to 15 digits")
        return value


class TemplateSettings(_Model):
    """Overrides of one kind's texts; a key left out keeps the built-in one."""

    subject: str | None = Field(default=None, min_length=1)
    body: str | None = Field(default=None, min_length=1)
    sms: str | None = Field(default=None, min_length=1)


class AlertTemplates(_Model):
    quota: TemplateSettings = TemplateSettings()
    used_up: TemplateSettings = TemplateSettings()
    expiring: TemplateSettings = TemplateSettings()
    content: TemplateSettings = TemplateSettings()

    @field_validator("quota", "used_up", "expiring", "content")
    @classmethod
    def _placeholders(cls, value: TemplateSettings, info: ValidationInfo) -> TemplateSettings:
        assert info.field_name is not None
        allowed = PLACEHOLDERS[AlertKind(info.field_name)]
        for name in ("subject", "body", "sms"):
            text = getattr(value, name)
            if text is None:
                continue
            try:
                used = placeholders(text)
            except ValueError as exc:
                raise ValueError(f"{name}: malformed template ({exc})") from None
            unknown = sorted(used - allowed)
            if unknown:
                raise ValueError(f"{name}: unknown placeholder(s) {unknown}; use {sorted(allowed)}")
        return value

    def merged(self) -> dict[AlertKind, Template]:
        out = {}
        for kind in AlertKind:
            given: TemplateSettings = getattr(self, kind.value)
            default = DEFAULT_TEMPLATES[kind]
            out[kind] = Template(
                subject=given.subject or default.subject,
                body=given.body or default.body,
                sms=given.sms or default.sms,
            )
        return out


class AlertSettings(_Model):
    """The ``alerts:`` section (see the module docstring)."""

    enabled: bool = True
    check_interval: float = Field(default=60.0, ge=1, le=86_400)
    order_thresholds: tuple[int, ...] = (80, 95, 100)
    expiring_days: tuple[int, ...] = (7, 1)
    content_rejections: ContentRuleSettings = ContentRuleSettings()
    operator: ContactSettings = ContactSettings()
    partner_contacts: dict[str, ContactSettings] = Field(default_factory=dict)
    smtp: SmtpSettings | None = None
    sms: SmsSettings = SmsSettings()
    utc_offset: str = "+00:00"
    templates: AlertTemplates = AlertTemplates()

    @field_validator("order_thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= t <= 100 for t in value):
            raise ValueError("percentages from 1 to 100 (100: used up)")
        if len(set(value)) != len(value):
            raise ValueError("each threshold once")
        return tuple(sorted(value))

    @field_validator("expiring_days")
    @classmethod
    def _days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= d <= 366 for d in value):
            raise ValueError("days from 1 to 366")
        if len(set(value)) != len(value):
            raise ValueError("each number of days once")
        return tuple(sorted(value, reverse=True))

    @field_validator("utc_offset")
    @classmethod
    def _offset(cls, value: str) -> str:
        parse_utc_offset(value)
        return value

    @model_validator(mode="after")
    def _mail_needs_smtp(self) -> Self:
        emails = bool(self.operator.emails) or any(c.emails for c in self.partner_contacts.values())
        if emails and self.smtp is None:
            raise ValueError("mail addresses are given but no smtp server to send through")
        return self

    @property
    def active(self) -> bool:
        """Worth running: enabled, and someone to tell."""
        return self.enabled and (
            bool(self.operator.emails or self.operator.msisdns)
            or any(c.emails or c.msisdns for c in self.partner_contacts.values())
        )

    def plan(self) -> AlertPlan:
        """The runtime form :class:`smppgw.alerts.service.AlertService` takes."""
        return AlertPlan(
            check_interval=self.check_interval,
            order_thresholds=self.order_thresholds,
            expiring_days=self.expiring_days,
            content_count=self.content_rejections.count,
            content_window=self.content_rejections.within_hours * 3600 or DAY,
            operator=self.operator.contacts(),
            partner_contacts={k: v.contacts() for k, v in self.partner_contacts.items()},
            sms_source=self.sms.source,
            sms_priority=self.sms.priority,
            templates=self.templates.merged(),
            utc_offset=parse_utc_offset(self.utc_offset),
            smtp=None if self.smtp is None else self.smtp.target(),
        )


def alert_problems(
    settings: AlertSettings, partner_ids: Iterable[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """``partner_contacts`` naming none of ``partner_ids``, each with its location below
    ``Config``."""
    known = set(partner_ids)
    return [
        (("alerts", "partner_contacts", system_id), f"no partner with system_id {system_id!r}")
        for system_id in settings.partner_contacts
        if system_id not in known
    ]
