"""The receipt text a partner gets is what ``format_receipt`` would write.

``receipt_text`` writes it directly (it runs once per message sent); the canonical
formatter, fed the same fields, is the reference.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.gateway.partner_receipts import MessageInfo, receipt_text
from smppgw.protocol.receipt import Receipt, ReceiptError, format_receipt, parse_receipt

_times = st.floats(946_684_800, 4_102_444_799, allow_nan=False)  # 2000 .. 2099


@given(
    st.integers(1, 10**12),
    st.integers(1, 255),
    _times,
    _times,
    st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD"]),
    st.integers(0, 0xFFF),
    st.booleans(),
    st.text(max_size=40),
)
def test_receipt_text_is_the_canonical_format(
    message_id: int,
    parts: int,
    submitted_at: float,
    now: float,
    stat: str,
    err: int,
    delivered: bool,
    head: str,
) -> None:
    info = MessageInfo(
        message_id, "p1", "SRC", 5, 0, "84901234567", 1, 1, 1, parts, submitted_at, head
    )

    def minute(t: float) -> datetime:
        return datetime.fromtimestamp(t, tz=UTC).replace(tzinfo=None, second=0, microsecond=0)

    reference = Receipt(
        message_id=str(message_id),
        sub=parts,
        dlvrd=parts if delivered else 0,
        submit_date=minute(submitted_at),
        done_date=minute(now),
        stat=stat,
        err=f"{err:03d}",
        text=head[:20],
    )
    text = receipt_text(info, stat, err, delivered=delivered, now=now)
    assert text == format_receipt(reference)
    assert parse_receipt(text).message_id == str(message_id)


def test_a_date_outside_the_receipt_years_is_refused_as_before() -> None:
    info = MessageInfo(1, "p1", "SRC", 5, 0, "849", 1, 1, 1, 1, 0.0, "")
    with pytest.raises(ReceiptError, match="2000-2099"):
        receipt_text(info, "DELIVRD", 0, delivered=True, now=1_800_000_000.0)
