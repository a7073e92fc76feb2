"""Alerts (issue 7): partners and the operator told when an order runs low or expires, or
when a partner's content is refused again and again.

- ``rules``: pure functions from orders / violation counts and ``now`` to the alerts
  due, each with a unique key (no I/O, no clock);
- ``plan``: the runtime settings and what one alert becomes (SMS to journal, mails);
- ``mailer``: a small SMTP client (standard library, in a worker thread);
- ``service``: :class:`~smppgw.alerts.service.AlertService`, the daemon's task.

Once per threshold rests on the store: the alert's key is an ``event`` row written in
the same transaction that journals its SMS (``Store.commit_step``). The package knows
``protocol`` and the store; it imports nothing of ``net`` or ``app``.
"""

from __future__ import annotations
