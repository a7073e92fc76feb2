"""The alert task: every ``check_interval`` seconds, look at the orders and the content
violations, raise the alerts due, and send the mails still owed.

Why each step is where it is (a crash may come at any instruction):

1. ONE transaction (``Store.commit_step``) records the alert's key as an ``event`` row,
   the keys it covers, and journals its SMS. Either all of it is durable or none: the
   next pass (or the next start) finds the alert still due and does it then. A key seen
   before makes the transaction a no-op, so an SMS is never journaled twice, whoever
   checks and however often.
2. The journaled SMS go to the MT pipeline through ``submit`` (the daemon's
   ``_submit_replies``). A crash before that loses nothing: they are ``accepted`` in the
   journal and start-up recovery sends them.
3. The mails are rendered into the alert's payload in step 1 and sent afterwards, each
   recorded (``alert-mail:<key>:<audience>``) only once the server took it. A mail that
   failed is retried at every pass until it goes out (or is refused for good, 5xx). The
   one duplicate possible: the process dies after the server took a mail and before its
   record commits; the mail is sent again at the next start. A mail is never lost.

The service reads the store and the partner server's counters (``violations``, a
callable: this package does not import ``net``); it never blocks the loop (SMTP runs in
a worker thread).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import structlog
import trio

from smppgw.alerts.mailer import MailError, OutgoingMail, send_mail
from smppgw.alerts.plan import compose, sms_messages
from smppgw.alerts.rules import OrderUsage, ViolationTracker, order_alerts
from smppgw.store.alerts import (
    ALERT_EVENT,
    PendingMail,
    cover_keys,
    known_keys,
    pending_mails,
    record_mail,
)
from smppgw.store.errors import StoreError
from smppgw.store.scenario_tx import EventIntake, StepWrite

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from smppgw.alerts.mailer import SmtpTarget
    from smppgw.alerts.plan import AlertPlan
    from smppgw.alerts.rules import DueAlert
    from smppgw.store import NewMessage, Store

    Submit = Callable[[list[int], list[NewMessage]], None]
    Mailer = Callable[[SmtpTarget, OutgoingMail], Awaitable[dict[str, tuple[int, bytes]]]]

__all__ = ["AlertService", "AlertStatistics"]

log = structlog.get_logger("smppgw.alerts")

#: Pending mails read per query while flushing.
MAIL_BATCH = 50


@dataclass(frozen=True, slots=True)
class AlertStatistics:
    """Counts since start: alerts raised by kind, SMS journaled, mails sent / refused
    for good / failed for now (retried), checks that failed on the store."""

    alerts: Mapping[str, int] = field(default_factory=dict)
    sms: int = 0
    mails_sent: int = 0
    mails_refused: int = 0
    mail_failures: int = 0
    check_errors: int = 0


class AlertService:
    """See the module docstring. ``submit`` hands journaled SMS to the MT pipeline;
    ``violations`` returns content violations per partner since the process started
    (``rules.violation_counts(server.statistics())``), or is None without a server."""

    def __init__(
        self,
        plan: AlertPlan,
        store: Store,
        submit: Submit,
        *,
        violations: Callable[[], Mapping[str, int]] | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        mailer: Mailer = send_mail,
    ) -> None:
        self.plan = plan
        self.store = store
        self._submit = submit
        self._violations = violations
        self._clock = clock
        self._rng = rng or random.Random()
        self._mailer = mailer
        self._tracker = ViolationTracker(plan.content_count, plan.content_window)
        #: Keys known to be recorded (sent or covered): not asked of the store again.
        self._seen: set[str] = set()
        self._alerts: Counter[str] = Counter()
        self._sms = 0
        self._mails_sent = 0
        self._mails_refused = 0
        self._mail_failures = 0
        self._check_errors = 0

    def reconfigure(self, plan: AlertPlan) -> None:
        """New settings (SIGHUP); keys already recorded stay recorded."""
        self.plan = plan
        self._tracker.count = plan.content_count
        self._tracker.window = plan.content_window

    def statistics(self) -> AlertStatistics:
        return AlertStatistics(
            alerts=dict(self._alerts),
            sms=self._sms,
            mails_sent=self._mails_sent,
            mails_refused=self._mails_refused,
            mail_failures=self._mail_failures,
            check_errors=self._check_errors,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check at once (mails left owed by a crash go out now), then every interval."""
        task_status.started()
        while True:
            await self.check()
            await trio.sleep(self.plan.check_interval)

    async def check(self) -> None:
        """One pass. A store that refuses work now is tried again at the next pass."""
        now = self._clock()
        try:
            await self._check_orders(now)
            await self._check_content(now)
            await self.flush_mail()
        except StoreError as exc:
            self._check_errors += 1
            log.warning("alert check failed", error=str(exc))
        except Exception:  # a bug in one check must not end the daemon: the next pass
            self._check_errors += 1
            log.exception("alert check failed")

    # -- what is due ---------------------------------------------------------------

    async def _learn(self, keys: Iterable[str]) -> None:
        unknown = [k for k in keys if k not in self._seen]
        if unknown:
            self._seen |= await self.store.read(partial(known_keys, keys=unknown))

    async def _check_orders(self, now: float) -> None:
        plan = self.plan
        orders = [OrderUsage.of(o) for o in await self.store.active_orders()]

        def due() -> list[DueAlert]:
            return order_alerts(orders, now, plan.order_thresholds, plan.expiring_days, self._seen)

        first = due()
        if not first:
            return
        await self._learn(k for alert in first for k in alert.keys)
        for alert in due():
            await self.raise_alert(alert, now)

    async def _check_content(self, now: float) -> None:
        if self._violations is None:
            return
        self._tracker.observe(self._violations(), now)
        for alert in self._tracker.due(now):
            await self._learn([alert.key])
            if alert.key not in self._seen:
                await self.raise_alert(alert, now)
            self._tracker.fired(alert.partner, now)

    # -- one alert -----------------------------------------------------------------

    async def raise_alert(self, alert: DueAlert, now: float) -> bool:
        """Record ``alert`` with its SMS (once) and hand the SMS to the pipeline; False
        if it was recorded before or there is nobody to tell (then it is not recorded:
        contacts added later still get it)."""
        composed = compose(self.plan, alert)
        if composed.empty:
            log.debug("alert without recipients", key=alert.key, partner=alert.partner)
            return False
        messages = sms_messages(self.plan, composed.sms_text, composed.msisdns, self._rng)
        payload: dict[str, object] = {
            "kind": alert.kind.value,
            "partner": alert.partner,
            "values": dict(alert.values),
            "sms": composed.sms_text,
            "msisdns": list(composed.msisdns),
            "mails": composed.mail_payload(),
        }

        def step(conn: sqlite3.Connection) -> StepWrite:
            if alert.covers:
                cover_keys(conn, alert.covers, alert.key, now)
            return StepWrite(messages=messages, outcome=alert.kind.value)

        def on_error(exc: BaseException) -> StepWrite:
            raise exc  # only our own SQL runs in the step: a fault undoes the whole alert

        result = await self.store.commit_step(
            step, on_error, event=EventIntake(ALERT_EVENT, alert.partner, payload, alert.key)
        )
        self._seen.update(alert.keys)
        if result is None:
            return False
        if result.message_ids:
            self._submit(result.message_ids, messages)
        self._alerts[alert.kind.value] += 1
        self._sms += len(result.message_ids)
        log.info(
            "alert raised",
            key=alert.key,
            kind=alert.kind.value,
            partner=alert.partner,
            sms=len(result.message_ids),
            mails=len(composed.mails),
            covers=list(alert.covers),
        )
        return True

    # -- mail ----------------------------------------------------------------------

    async def flush_mail(self) -> int:
        """Send the mails owed, oldest first; stop at the first failure that may pass
        (the server is probably down: the rest would fail the same way). Returns how
        many were settled (sent or refused for good)."""
        smtp = self.plan.smtp
        if smtp is None:
            return 0
        settled = 0
        while True:
            batch = await self.store.read(partial(pending_mails, limit=MAIL_BATCH))
            for mail in batch:
                if not await self._send_one(smtp, mail):
                    return settled
                settled += 1
            if len(batch) < MAIL_BATCH:
                return settled

    async def _send_one(self, smtp: SmtpTarget, mail: PendingMail) -> bool:
        try:
            refused = await self._mailer(smtp, OutgoingMail(mail.to, mail.subject, mail.body))
        except MailError as exc:
            if not exc.permanent:
                self._mail_failures += 1
                log.warning(
                    "alert mail not sent, retried at the next check",
                    key=mail.alert_key,
                    audience=mail.audience,
                    reason=str(exc),
                )
                return False
            self._mails_refused += 1
            result = f"refused: {exc}"
            log.error(
                "alert mail refused for good",
                key=mail.alert_key,
                audience=mail.audience,
                reason=str(exc),
            )
        else:
            self._mails_sent += 1
            result = "sent"
            if refused:
                result += f"; refused {sorted(refused)}"
                log.warning(
                    "alert mail: some recipients refused",
                    key=mail.alert_key,
                    refused=sorted(refused),
                )
        await self.store.run_in_transaction(
            partial(
                record_mail,
                alert_key=mail.alert_key,
                audience=mail.audience,
                result=result,
                now=self._clock(),
            )
        )
        return True
