"""The schema and its versioned migrations.

The file's version is ``PRAGMA user_version``. At open, :func:`migrate` applies every
migration newer than the file, in order, inside ONE ``BEGIN IMMEDIATE`` transaction:
either the file reaches the code's version or it is left untouched. A file whose
version is newer than the code is refused with :class:`SchemaTooNew` (naming the file and
both versions): an older binary must not write rows a newer one would misread.

Rules for adding a migration: append, never edit a released one; plain ``CREATE`` /
``ALTER`` statements separated by ``;`` (no ``executescript``: in Python 3.11 it commits
the open transaction first, which would break the all-or-nothing upgrade).

Conventions: times are INTEGER milliseconds since the epoch; money and points are
INTEGER minor units; states are short lower-case TEXT so the file reads well in the
``sqlite3`` shell.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from smppgw.store.errors import SchemaTooNew

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "migrate", "schema_version"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    script: str

    def statements(self) -> list[str]:
        """The script cut into complete statements (``sqlite3.complete_statement``)."""
        out: list[str] = []
        pending = ""
        for line in self.script.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                out.append(pending.strip())
                pending = ""
        if pending.strip():
            raise ValueError(f"migration {self.version}: incomplete statement: {pending!r}")
        return out


_V1_CORE = """
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Partners' orders. For prepaid, quota_limit counts SMS parts and unit_cost is 1; for
-- postpaid it is the credit limit in money minor units and unit_cost the price of a part.
-- reserved + spent never exceeds quota_limit: the CHECK is the last line of defence, the
-- reserve statement itself only succeeds when enough is left.
CREATE TABLE partner_order (
    id          INTEGER PRIMARY KEY,
    partner     TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('prepaid', 'postpaid')),
    quota_limit INTEGER NOT NULL CHECK (quota_limit >= 0),
    unit_cost   INTEGER NOT NULL DEFAULT 1 CHECK (unit_cost >= 0),
    reserved    INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    spent       INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0),
    starts_at   INTEGER,
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL,
    CHECK (reserved + spent <= quota_limit)
);
CREATE INDEX partner_order_by_partner ON partner_order (partner, expires_at);

-- One row per reservation made at admission; settled by the message's outcome.
CREATE TABLE quota_ledger (
    id         INTEGER PRIMARY KEY,
    order_id   INTEGER NOT NULL REFERENCES partner_order (id),
    parts      INTEGER NOT NULL CHECK (parts > 0),
    amount     INTEGER NOT NULL CHECK (amount >= 0),
    state      TEXT    NOT NULL CHECK (state IN ('reserved', 'settled')),
    charged    INTEGER,
    created_at INTEGER NOT NULL,
    settled_at INTEGER
);
CREATE INDEX quota_ledger_open ON quota_ledger (order_id) WHERE state = 'reserved';

-- The MT journal: one row per message accepted from a partner or a scenario.
CREATE TABLE mt_message (
    id                  INTEGER PRIMARY KEY,
    partner             TEXT    NOT NULL,
    source_addr         TEXT    NOT NULL,
    source_ton          INTEGER NOT NULL,
    source_npi          INTEGER NOT NULL,
    destination_addr    TEXT    NOT NULL,
    dest_ton            INTEGER NOT NULL,
    dest_npi            INTEGER NOT NULL,
    data_coding         INTEGER NOT NULL,
    esm_class           INTEGER NOT NULL,
    registered_delivery INTEGER NOT NULL,
    priority            INTEGER NOT NULL,
    body                BLOB    NOT NULL,
    part_count          INTEGER NOT NULL,
    state               TEXT    NOT NULL,
    smsc                TEXT,
    carrier_id          TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    order_id            INTEGER REFERENCES partner_order (id),
    reservation_id      INTEGER REFERENCES quota_ledger (id),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    next_attempt_at     INTEGER,
    expires_at          INTEGER,
    final_status        INTEGER,
    error               TEXT
);
-- Recovery and the retry scheduler read only unfinished rows: a partial index stays
-- small however long the history grows.
CREATE INDEX mt_message_unfinished ON mt_message (state, next_attempt_at)
    WHERE state IN ('accepted', 'submitted');
CREATE INDEX mt_message_by_partner ON mt_message (partner, created_at);
CREATE INDEX mt_message_by_order ON mt_message (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX mt_message_by_reservation ON mt_message (reservation_id)
    WHERE reservation_id IS NOT NULL;

-- Segments of a message split before journaling (absent for single-part messages).
CREATE TABLE mt_part (
    message_id INTEGER NOT NULL REFERENCES mt_message (id),
    part_no    INTEGER NOT NULL,
    payload    BLOB    NOT NULL,
    PRIMARY KEY (message_id, part_no)
) WITHOUT ROWID;

-- Carrier message id -> our message, per part. Carriers' ids are only unique per SMSC,
-- hence the SMSC name in the key.
CREATE TABLE carrier_ref (
    smsc         TEXT    NOT NULL,
    carrier_id   TEXT    NOT NULL,
    message_id   INTEGER NOT NULL REFERENCES mt_message (id),
    part_no      INTEGER NOT NULL,
    submitted_at INTEGER NOT NULL,
    PRIMARY KEY (smsc, carrier_id)
) WITHOUT ROWID;
CREATE INDEX carrier_ref_by_message ON carrier_ref (message_id);

-- Inbound deliver_sm (MO and receipts), journaled before the carrier is acknowledged.
-- UNIQUE (smsc, dedup_key) is the exactly-once guard against carrier redeliveries.
CREATE TABLE inbound (
    id               INTEGER PRIMARY KEY,
    smsc             TEXT    NOT NULL,
    dedup_key        TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('mo', 'receipt')),
    source_addr      TEXT    NOT NULL,
    source_ton       INTEGER NOT NULL,
    source_npi       INTEGER NOT NULL,
    destination_addr TEXT    NOT NULL,
    dest_ton         INTEGER NOT NULL,
    dest_npi         INTEGER NOT NULL,
    data_coding      INTEGER NOT NULL,
    esm_class        INTEGER NOT NULL,
    body             BLOB    NOT NULL,
    carrier_id       TEXT,
    received_at      INTEGER NOT NULL,
    processed_at     INTEGER,
    UNIQUE (smsc, dedup_key)
);
CREATE INDEX inbound_unprocessed ON inbound (id) WHERE processed_at IS NULL;

-- Receipts owed to partners; a row is deleted once the partner acknowledged it.
CREATE TABLE receipt_outbox (
    id         INTEGER PRIMARY KEY,
    partner    TEXT    NOT NULL,
    message_id INTEGER NOT NULL REFERENCES mt_message (id),
    stat       TEXT    NOT NULL,
    err        INTEGER NOT NULL,
    body       BLOB    NOT NULL,
    done_at    INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX receipt_outbox_by_partner ON receipt_outbox (partner, id);
"""

_V2_SCENARIOS = """
-- Loyalty members (registration scenario); points is the running balance, the ledger
-- below is its history. A balance never goes below zero.
CREATE TABLE member (
    member_id  TEXT    PRIMARY KEY,
    msisdn     TEXT    NOT NULL UNIQUE,
    name       TEXT,
    province   TEXT,
    fields     TEXT    NOT NULL DEFAULT '{}',
    points     INTEGER NOT NULL DEFAULT 0 CHECK (points >= 0),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX member_by_name ON member (name);
CREATE INDEX member_by_province ON member (province);

-- Scratch-card codes from the card provider; each is used once.
CREATE TABLE code_inventory (
    code        TEXT    PRIMARY KEY,
    campaign    TEXT    NOT NULL,
    points      INTEGER NOT NULL CHECK (points >= 0),
    valid_from  INTEGER,
    valid_to    INTEGER,
    used_by     TEXT,
    used_at     INTEGER,
    query_count INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX code_inventory_by_campaign ON code_inventory (campaign);

CREATE TABLE points_ledger (
    id            INTEGER PRIMARY KEY,
    member_id     TEXT    NOT NULL REFERENCES member (member_id),
    delta         INTEGER NOT NULL,
    balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
    reason        TEXT    NOT NULL,
    ref           TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX points_ledger_by_member ON points_ledger (member_id, created_at);

-- Gifts (often a virtual card number and PIN); a free one has assigned_to NULL.
CREATE TABLE gift_inventory (
    id          INTEGER PRIMARY KEY,
    gift_type   TEXT    NOT NULL,
    cost_points INTEGER NOT NULL CHECK (cost_points >= 0),
    serial      TEXT    NOT NULL,
    pin         TEXT,
    assigned_to TEXT REFERENCES member (member_id),
    assigned_at INTEGER,
    UNIQUE (gift_type, serial)
);
CREATE INDEX gift_inventory_free ON gift_inventory (gift_type, id) WHERE assigned_to IS NULL;

-- Subscriber facts the airtime-advance scenario decides on (money in minor units).
CREATE TABLE subscriber_profile (
    msisdn             TEXT    PRIMARY KEY,
    arpu_3m            INTEGER NOT NULL DEFAULT 0,
    balance            INTEGER,
    opted_out          INTEGER NOT NULL DEFAULT 0,
    advance_registered INTEGER NOT NULL DEFAULT 0,
    advance_paused     INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE advance (
    id           INTEGER PRIMARY KEY,
    msisdn       TEXT    NOT NULL,
    amount       INTEGER NOT NULL CHECK (amount > 0),
    fee          INTEGER NOT NULL DEFAULT 0 CHECK (fee >= 0),
    recovered    INTEGER NOT NULL DEFAULT 0 CHECK (recovered >= 0),
    state        TEXT    NOT NULL CHECK (state IN ('outstanding', 'recovered', 'cancelled')),
    created_at   INTEGER NOT NULL,
    recovered_at INTEGER
);
-- "One advance outstanding at a time" held by the file itself.
CREATE UNIQUE INDEX advance_one_outstanding ON advance (msisdn) WHERE state = 'outstanding';
CREATE INDEX advance_by_msisdn ON advance (msisdn, created_at);

-- Business events (alerts sent, registrations, lucky draws...), payload is JSON.
CREATE TABLE event (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    subject    TEXT,
    payload    TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
CREATE INDEX event_by_kind ON event (kind, created_at);
CREATE INDEX event_by_subject ON event (subject, created_at) WHERE subject IS NOT NULL;

-- Every MO and MT of the scenarios, searchable by subscriber and exportable.
CREATE TABLE message_log (
    id         INTEGER PRIMARY KEY,
    direction  TEXT    NOT NULL CHECK (direction IN ('mo', 'mt')),
    msisdn     TEXT    NOT NULL,
    short_code TEXT,
    body       TEXT    NOT NULL,
    scenario   TEXT,
    message_id INTEGER,
    inbound_id INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX message_log_by_msisdn ON message_log (msisdn, created_at);
"""

# The outbox to partners carries MO too (a partner's short code), which has no MT
# message: message_id becomes optional. SQLite cannot drop a constraint in place, so the
# table is rebuilt (inside the migration's transaction, like every migration).
_V3_OUTBOX = """
CREATE TABLE receipt_outbox_v3 (
    id         INTEGER PRIMARY KEY,
    partner    TEXT    NOT NULL,
    message_id INTEGER REFERENCES mt_message (id),
    stat       TEXT    NOT NULL,
    err        INTEGER NOT NULL,
    body       BLOB    NOT NULL,
    done_at    INTEGER,
    created_at INTEGER NOT NULL
);
INSERT INTO receipt_outbox_v3 SELECT id, partner, message_id, stat, err, body, done_at,
    created_at FROM receipt_outbox;
DROP TABLE receipt_outbox;
ALTER TABLE receipt_outbox_v3 RENAME TO receipt_outbox;
CREATE INDEX receipt_outbox_by_partner ON receipt_outbox (partner, id);
"""

# The scenario engine (issue 6): exactly-once MO processing records its outcome and a
# correlation id beside each logged MO/MT; events from the operator's systems are
# deduplicated by their key; a few per-scenario facts get their own small tables.
_V4_SCENARIO_ENGINE = """
ALTER TABLE message_log ADD COLUMN outcome TEXT;
ALTER TABLE message_log ADD COLUMN member_id TEXT;
ALTER TABLE message_log ADD COLUMN correlation TEXT;
CREATE INDEX message_log_by_member ON message_log (member_id, created_at)
    WHERE member_id IS NOT NULL;
CREATE INDEX message_log_by_time ON message_log (created_at);
ALTER TABLE event ADD COLUMN event_key TEXT;
ALTER TABLE event ADD COLUMN processed_at INTEGER;
CREATE UNIQUE INDEX event_by_key ON event (event_key) WHERE event_key IS NOT NULL;
CREATE INDEX event_unprocessed ON event (id) WHERE processed_at IS NULL;
ALTER TABLE code_inventory ADD COLUMN last_query_at INTEGER;
ALTER TABLE code_inventory ADD COLUMN last_query_by TEXT;
ALTER TABLE member ADD COLUMN monthly_spend INTEGER;
-- Optional TLVs of an MT (for example a USSD reply's ussd_service_op and
-- its_session_info), encoded as they go on the wire.
ALTER TABLE mt_message ADD COLUMN tlvs BLOB;

-- Wrong scratch-card codes per number and day (the anti-guessing limit).
CREATE TABLE code_attempt (
    msisdn TEXT    NOT NULL,
    day    TEXT    NOT NULL,
    wrong  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (msisdn, day)
) WITHOUT ROWID;

-- A question a scenario asked and waits for (redemption: "DOI <gift>" then "Y").
CREATE TABLE pending_confirmation (
    msisdn     TEXT    NOT NULL,
    scenario   TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    payload    TEXT    NOT NULL DEFAULT '{}',
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (msisdn, scenario)
) WITHOUT ROWID;

-- The built-in charging adapter: subscriber balances and their history (minor units).
CREATE TABLE balance_ledger (
    id            INTEGER PRIMARY KEY,
    msisdn        TEXT    NOT NULL,
    delta         INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    ref           TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX balance_ledger_by_msisdn ON balance_ledger (msisdn, created_at);
"""

# The admin CLI (issue 7): an order's price as sold (recorded for invoices, never used to
# charge), and partner accounts managed from the CLI while the daemon runs. A row
# overrides the config's partner of the same system_id (password_hash, enabled: NULL
# keeps the config's value) or, with ``settings`` (the JSON of its PartnerSettings
# fields), defines a partner the config does not have.
_V5_ADMIN = """
ALTER TABLE partner_order ADD COLUMN price_minor INTEGER CHECK (price_minor >= 0);
CREATE TABLE partner_account (
    system_id     TEXT    PRIMARY KEY,
    password_hash TEXT,
    enabled       INTEGER CHECK (enabled IN (0, 1)),
    settings      TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Retention deletes old messages: each delete checks the outbox's foreign key, a full
# scan without this index. Reports filter messages by time: the second one.
_V6_INDEXES = """
CREATE INDEX receipt_outbox_by_message ON receipt_outbox (message_id);
CREATE INDEX mt_message_by_created ON mt_message (created_at);
"""

# A message in parts becomes final when every part's receipt came: each part's final
# state is kept with its carrier reference, so receipts that straddle a restart still
# add up (they were kept in memory only).
_V7_PART_STATES = """
ALTER TABLE carrier_ref ADD COLUMN receipt_state TEXT;
"""

# A partner's deliverer knows which outbox rows it has read by their id, and a receipt
# handed over from memory at or below the highest id read is one it has (see
# net/partner_delivery.py). Without AUTOINCREMENT SQLite reuses the id of a deleted last
# row, and every acknowledged receipt is deleted: ids must never come back.
_V8_OUTBOX_IDS = """
CREATE TABLE receipt_outbox_v8 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    partner    TEXT    NOT NULL,
    message_id INTEGER REFERENCES mt_message (id),
    stat       TEXT    NOT NULL,
    err        INTEGER NOT NULL,
    body       BLOB    NOT NULL,
    done_at    INTEGER,
    created_at INTEGER NOT NULL
);
INSERT INTO receipt_outbox_v8 SELECT id, partner, message_id, stat, err, body, done_at,
    created_at FROM receipt_outbox;
DROP TABLE receipt_outbox;
ALTER TABLE receipt_outbox_v8 RENAME TO receipt_outbox;
CREATE INDEX receipt_outbox_by_partner ON receipt_outbox (partner, id);
CREATE INDEX receipt_outbox_by_message ON receipt_outbox (message_id);
"""

# An MO's TLVs are journaled with it: a message in parts that says so only in sar_* TLVs
# must still be put together when a restart replays its parts.
_V9_INBOUND_TLVS = """
ALTER TABLE inbound ADD COLUMN tlvs BLOB;
"""

# An order the operator cancelled says so (it used to show as expired: a cancel ends it
# by its expiry, which the quota code already honours).
_V10_ORDER_CANCELLED = """
ALTER TABLE partner_order ADD COLUMN cancelled_at INTEGER;
"""

# mt_message_by_order served no query (the reports find a period's orders through
# mt_message_by_created, and an order is never deleted, so no foreign-key check needs
# it), yet every admitted message paid for it: one more B-tree insert, and one more
# page written to the WAL by every admission commit (a fifth of a small commit's pages).
_V11_DROP_ORDER_INDEX = """
DROP INDEX IF EXISTS mt_message_by_order;
"""

# What a partner's submit_sm said that the carrier or the partner's receipt must carry
# again: its protocol_id (a silent SMS, 0x40, or a replace type, 0x41-0x47, went out as
# a plain visible SMS when it was dropped) and its user_message_reference (echoed in the
# receipt, so a partner can match it without keeping our id).
_V12_PROTOCOL_ID_USER_REF = """
ALTER TABLE mt_message ADD COLUMN protocol_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mt_message ADD COLUMN user_ref INTEGER;
"""

# Numbers whose subscribers refused marketing (``store/opt_out.py``): scope '' is every
# partner's marketing, else one partner's. Keyed by number first: admission looks up a
# batch's destinations at once. WITHOUT ROWID: the key is the row.
_V13_OPT_OUT = """
CREATE TABLE opt_out (
    msisdn     TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (msisdn, scope)
) WITHOUT ROWID;
"""

# A partner's cancel_sm by addresses (no message id) finds its messages held for
# moderation through this one; the moderation listing too. Partial: admission and the
# carrier's outcomes write nothing to it, and it holds only what waits for a moderator.
_V14_HELD_INDEX = """
CREATE INDEX mt_message_held ON mt_message (partner) WHERE state = 'held';
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core: MT journal, carrier ids, inbound dedup, receipts, orders", _V1_CORE),
    Migration(2, "scenario tables: members, codes, points, gifts, advances, logs", _V2_SCENARIOS),
    Migration(3, "partner outbox also carries MO (message_id optional)", _V3_OUTBOX),
    Migration(4, "scenario engine: outcomes, event keys, attempts", _V4_SCENARIO_ENGINE),
    Migration(5, "admin: order price, partner accounts managed from the CLI", _V5_ADMIN),
    Migration(6, "indexes for retention and reports", _V6_INDEXES),
    Migration(7, "per-part receipt states of messages in parts", _V7_PART_STATES),
    Migration(8, "partner outbox ids never reused", _V8_OUTBOX_IDS),
    Migration(
        9, "inbound MO keeps its TLVs (sar_* parts replayed after a restart)", _V9_INBOUND_TLVS
    ),
    Migration(10, "a cancelled order is told from an expired one", _V10_ORDER_CANCELLED),
    Migration(11, "drop mt_message_by_order, an index no query uses", _V11_DROP_ORDER_INDEX),
    Migration(12, "MT keeps protocol_id and user_message_reference", _V12_PROTOCOL_ID_USER_REF),
    Migration(13, "the opt-out list of marketing messages", _V13_OPT_OUT),
    Migration(14, "an index of the messages held for moderation", _V14_HELD_INDEX),
)

#: The version this code writes; a file above it is refused.
SCHEMA_VERSION = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    """The file's ``PRAGMA user_version`` (0 for a new file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(
    conn: sqlite3.Connection,
    path: str,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> tuple[int, int]:
    """Bring the file to the newest version in one transaction.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``).
        path: the file's name, for error messages.
        migrations: the ladder to climb (tests pass a longer one).

    Returns:
        ``(version_before, version_after)``.

    Raises:
        SchemaTooNew: the file's version is above the newest migration.
    """
    target = migrations[-1].version if migrations else 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read inside the write transaction: another process cannot migrate between
        # the check and the upgrade.
        before = schema_version(conn)
        if before > target:
            raise SchemaTooNew(path, before, target)
        for migration in migrations:
            if migration.version > before:
                for statement in migration.statements():
                    conn.execute(statement)
        if target != before:
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return before, target
