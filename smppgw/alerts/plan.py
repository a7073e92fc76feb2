"""The alert service's runtime settings, and what one due alert becomes: the SMS to
journal and the mails to send.

:class:`AlertPlan` is plain data so this package does not depend on the config layer:
``smppgw.app.alert_models.AlertSettings.plan()`` builds it from the YAML section.

The SMS go out through the gateway itself, journaled under the partner
:data:`ALERT_PARTNER` with ``registered_delivery`` 0: no partner is owed a receipt for
them (``smppgw.gateway.partner_receipts`` writes none when none was asked), so nothing
piles up in an outbox no partner ever reads. Mails are rendered once, when the alert is
recorded, and kept in its ``event`` payload: a retry after a crash sends the same text.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from smppgw.alerts.mailer import OutgoingMail, recipients
from smppgw.alerts.rules import DAY, AlertKind, DueAlert
from smppgw.protocol.concat import split_message
from smppgw.protocol.text import SplitMode, choose_encoding
from smppgw.store import NewMessage

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

    from smppgw.alerts.mailer import SmtpTarget

__all__ = [
    "ALERT_PARTNER",
    "DEFAULT_TEMPLATES",
    "PLACEHOLDERS",
    "AlertPlan",
    "Composed",
    "Contacts",
    "Template",
    "compose",
    "placeholders",
    "render",
    "sms_messages",
]

#: The ``partner`` of the gateway's own alert SMS in the journal.
ALERT_PARTNER = "gateway:alerts"

_ORDER = frozenset(
    {"partner", "order_id", "used", "limit", "remaining", "percent", "expires_at", "threshold"}
)
#: The placeholders each kind's templates may use.
PLACEHOLDERS: Mapping[AlertKind, frozenset[str]] = {
    AlertKind.QUOTA: _ORDER,
    AlertKind.USED_UP: _ORDER,
    AlertKind.EXPIRING: (_ORDER - {"threshold"}) | {"days"},
    AlertKind.CONTENT: frozenset({"partner", "count", "hours"}),
}


@dataclass(frozen=True, slots=True)
class Template:
    subject: str
    body: str
    sms: str


DEFAULT_TEMPLATES: Mapping[AlertKind, Template] = {
    AlertKind.QUOTA: Template(
        subject="[smppgw] {partner}: order {order_id} is {threshold}% used",
        body="Order {order_id} of partner {partner} has used {used} of {limit} ({percent}%);"
        " {remaining} left. It expires {expires_at}.",
        sms="Order {order_id} ({partner}): {percent}% used, {remaining} left.",
    ),
    AlertKind.USED_UP: Template(
        subject="[smppgw] {partner}: order {order_id} is used up",
        body="Order {order_id} of partner {partner} is used up ({used} of {limit})."
        " Messages it would pay for are refused until a new order is active.",
        sms="Order {order_id} ({partner}) is used up. Please renew.",
    ),
    AlertKind.EXPIRING: Template(
        subject="[smppgw] {partner}: order {order_id} expires within {days} day(s)",
        body="Order {order_id} of partner {partner} expires {expires_at};"
        " {remaining} of {limit} still unused.",
        sms="Order {order_id} ({partner}) expires {expires_at}, {remaining} left.",
    ),
    AlertKind.CONTENT: Template(
        subject="[smppgw] {partner}: {count} messages broke the content rules",
        body="Partner {partner} sent {count} messages in the last {hours} hours that its"
        " content rules refused or held. Please check the brandname and templates.",
        sms="{partner}: {count} messages refused or held by content rules in {hours}h.",
    ),
}


@dataclass(frozen=True, slots=True)
class Contacts:
    emails: tuple[str, ...] = ()
    msisdns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertPlan:
    """Everything the service needs; defaults match the config section's."""

    check_interval: float = 60.0
    order_thresholds: tuple[int, ...] = (80, 95, 100)
    expiring_days: tuple[int, ...] = (7, 1)
    content_count: int = 10
    content_window: float = DAY
    operator: Contacts = Contacts()
    partner_contacts: Mapping[str, Contacts] = field(default_factory=dict)
    sms_source: str = "ALERT"
    sms_priority: int = 1
    templates: Mapping[AlertKind, Template] = field(default_factory=lambda: DEFAULT_TEMPLATES)
    utc_offset: timedelta = timedelta(0)
    smtp: SmtpTarget | None = None

    def contacts(self, partner: str) -> Contacts:
        return self.partner_contacts.get(partner, Contacts())

    def template(self, kind: AlertKind) -> Template:
        return self.templates.get(kind, DEFAULT_TEMPLATES[kind])


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def placeholders(template: str) -> set[str]:
    """The ``{names}`` a template uses. Raises ValueError for a malformed one."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill ``{name}`` slots; an unknown one stays as written (never an exception: an
    alert with a visible ``{typo}`` is better than no alert)."""
    try:
        return template.format_map(_Keep(values))
    except (ValueError, IndexError, AttributeError, KeyError):
        return template


def _display(values: Mapping[str, object], offset: timedelta) -> dict[str, object]:
    out = dict(values)
    expires = values.get("expires_at")
    if "expires_at" in values:
        if isinstance(expires, int | float):
            local = datetime.fromtimestamp(float(expires), tz=UTC) + offset
            sign = "-" if offset < timedelta(0) else "+"
            minutes = abs(int(offset.total_seconds())) // 60
            out["expires_at"] = (
                f"{local:%Y-%m-%d %H:%M} {sign}{minutes // 60:02d}:{minutes % 60:02d}"
            )
        else:
            out["expires_at"] = "never"
    return out


@dataclass(frozen=True, slots=True)
class Composed:
    """One alert rendered: its SMS text and numbers, its mails by audience."""

    sms_text: str
    msisdns: tuple[str, ...]
    mails: tuple[tuple[str, OutgoingMail], ...]

    @property
    def empty(self) -> bool:
        return not self.msisdns and not self.mails

    def mail_payload(self) -> list[dict[str, object]]:
        """The mails as kept in the alert's event payload (for retries)."""
        return [
            {"audience": audience, "to": list(m.to), "subject": m.subject, "body": m.body}
            for audience, m in self.mails
        ]


def compose(plan: AlertPlan, alert: DueAlert) -> Composed:
    """The alert's texts and recipients: the partner's contacts and the operator's.
    Mails go to each audience separately (a partner never sees the operator's address);
    without SMTP settings there are none."""
    template = plan.template(alert.kind)
    values = _display(alert.values, plan.utc_offset)
    partner = plan.contacts(alert.partner)
    mails: list[tuple[str, OutgoingMail]] = []
    if plan.smtp is not None:
        subject = " ".join(render(template.subject, values).split())
        body = render(template.body, values)
        for audience, emails in (("partner", partner.emails), ("operator", plan.operator.emails)):
            if emails:
                mails.append((audience, OutgoingMail(recipients(emails), subject, body)))
    return Composed(
        sms_text=render(template.sms, values),
        msisdns=recipients(partner.msisdns, plan.operator.msisdns),
        mails=tuple(mails),
    )


def sms_messages(
    plan: AlertPlan, text: str, msisdns: tuple[str, ...], rng: random.Random
) -> list[NewMessage]:
    """One MT per number, split in parts when long (UDH, a random reference)."""
    encoded = choose_encoding(text)
    parts: tuple[bytes, ...] = ()
    if encoded.parts > 1:
        segments = split_message(
            encoded.payload, encoded.data_coding, SplitMode.UDH8, reference=rng.randrange(256)
        )
        parts = tuple(s.short_message for s in segments)
    source = plan.sms_source
    alnum = not source.isdigit()
    return [
        NewMessage(
            partner=ALERT_PARTNER,
            source_addr=source,
            source_ton=5 if alnum else (1 if len(source) > 8 else 0),
            source_npi=0 if alnum else 1,
            destination_addr=to,
            body=encoded.payload,
            data_coding=encoded.data_coding,
            registered_delivery=0,
            priority=plan.sms_priority,
            parts=parts,
        )
        for to in msisdns
    ]
