"""The durable store: SQLite journal with group commit; the only place that speaks SQL.

Start with :class:`Store` (``store.py``); the writer's theory of operation is at the top
of ``writer.py``, the durability levels in ``config.py``, the schema in ``schema.py``.
The store stores: it takes no business decision.
"""

from __future__ import annotations

from smppgw.store.config import Durability, StoreConfig
from smppgw.store.errors import (
    SchemaTooNew,
    StoreBusy,
    StoreCorrupt,
    StoreError,
    StoreReadFailed,
    StoreUnavailable,
)
from smppgw.store.health import StoreStatistics
from smppgw.store.outcomes import OutcomeBatch
from smppgw.store.records import (
    FINAL_STATES,
    CarrierLookup,
    FinalOutcome,
    InboundKind,
    InboundResult,
    MessageState,
    NewInbound,
    NewMessage,
    NewOrder,
    NewReceipt,
    Order,
    OrderKind,
    PendingReceipt,
    QuotaRefusal,
    RefusalReason,
    Requeue,
    Reservation,
    Settlement,
    StoredInbound,
    StoredMessage,
    Submitted,
)
from smppgw.store.schema import SCHEMA_VERSION
from smppgw.store.store import Recovery, Store, open_store

__all__ = [
    "FINAL_STATES",
    "SCHEMA_VERSION",
    "CarrierLookup",
    "Durability",
    "FinalOutcome",
    "InboundKind",
    "InboundResult",
    "MessageState",
    "NewInbound",
    "NewMessage",
    "NewOrder",
    "NewReceipt",
    "Order",
    "OrderKind",
    "OutcomeBatch",
    "PendingReceipt",
    "QuotaRefusal",
    "Recovery",
    "RefusalReason",
    "Requeue",
    "Reservation",
    "SchemaTooNew",
    "Settlement",
    "Store",
    "StoreBusy",
    "StoreConfig",
    "StoreCorrupt",
    "StoreError",
    "StoreReadFailed",
    "StoreStatistics",
    "StoreUnavailable",
    "StoredInbound",
    "StoredMessage",
    "Submitted",
    "open_store",
]
