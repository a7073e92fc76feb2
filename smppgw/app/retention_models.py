"""``retention:`` in the main config: how long the journal keeps finished rows.

::

    retention:
      enabled: true
      messages_days: 90        # final MT messages (and their parts, carrier ids)
      inbound_days: 7          # processed MO and carrier receipts (at least 1: MO dedup)
      log_days: 365            # the scenarios' MO/MT log (smppgw molog)
      events_days: 365         # processed business events without a key
      keyed_events_days: null  # events with a key (alerts, statements...): null = kept
      receipts_owed_days: 30   # receipts and MO a partner never took: null = kept
      archive_dir: null        # e.g. /var/lib/smppgw/archive: pruned MT as daily .csv.gz
      run_every_minutes: 60
      batch_rows: 5000         # most rows per writer item (each aims at ~5 ms of writer)

Why days are floats: an operator may want 0.5, and the soak test uses seconds (with
``short_horizons_for_tests``, which lifts the one-day floor of ``inbound_days``: an
inbound row's key is the guard against a carrier's redelivery, and a day is far more
than any carrier's redelivery delay).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path  # noqa: TC003 (pydantic reads the annotations at run time)
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DAY", "Horizons", "RetentionSettings"]

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Horizons:
    """The settings' ages in seconds (what the pruner compares with)."""

    messages: float
    inbound: float
    log: float
    events: float
    keyed_events: float | None
    receipts_owed: float | None


class RetentionSettings(BaseModel):
    """See the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    enabled: bool = True
    messages_days: float = Field(default=90.0, gt=0)
    inbound_days: float = Field(default=7.0, gt=0)
    log_days: float = Field(default=365.0, gt=0)
    events_days: float = Field(default=365.0, gt=0)
    keyed_events_days: float | None = Field(default=None, gt=0)
    #: A receipt (or MO) waiting in a partner's outbox this long is dropped: a partner
    #: that never binds a receiver would otherwise grow the journal for ever (and keep
    #: every message it asked a receipt for). None: kept until taken.
    receipts_owed_days: float | None = Field(default=30.0, gt=0)
    archive_dir: Path | None = None
    run_every_minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60)
    batch_rows: int = Field(default=5000, ge=100, le=100_000)
    #: Tests only: horizons of seconds (lifts the one-day floor of ``inbound_days``).
    short_horizons_for_tests: bool = False

    @model_validator(mode="after")
    def _floors(self) -> Self:
        if self.inbound_days < 1 and not self.short_horizons_for_tests:
            raise ValueError(
                "inbound_days: at least 1 (an inbound row guards against the carrier"
                " delivering it again)"
            )
        if self.keyed_events_days is not None and self.keyed_events_days < self.events_days:
            raise ValueError("keyed_events_days: not shorter than events_days")
        return self

    def horizons(self) -> Horizons:
        return Horizons(
            messages=self.messages_days * DAY,
            inbound=self.inbound_days * DAY,
            log=self.log_days * DAY,
            events=self.events_days * DAY,
            keyed_events=None if self.keyed_events_days is None else self.keyed_events_days * DAY,
            receipts_owed=None
            if self.receipts_owed_days is None
            else self.receipts_owed_days * DAY,
        )
