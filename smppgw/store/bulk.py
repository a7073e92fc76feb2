"""Many rows in few statements: how the writer thread holds the interpreter lock less.

Why this exists: the ``sqlite3`` module lets go of the interpreter lock (the GIL) around
every ``sqlite3_step`` and ``sqlite3_reset``, and ``executemany`` steps once a row. The
writer thread shares the lock with the event loop, which holds it nearly all the time
under load, so every one of those re-acquisitions waits for the loop to let go (at its
next system call). Measured on this project's 2-core machine, 64 rows inserted and
updated in one transaction: 0.21 ms by ``executemany`` alone, but 3.0 ms (and 0.98 ms
of CPU) beside a busy loop; the same as one multi-row ``INSERT`` and one
``UPDATE ... WHERE id IN (json_each(?))``: 1.0 ms (0.42 ms of CPU). On the gateway's hot
path (six row writes a message) that wait was most of a commit's time
(``scripts/bench_partner.py``).

So the hot writes go:

- inserts as ``INSERT ... VALUES (...), (...), ...``: :func:`insert_rows` cuts the rows
  into chunks whose sizes are powers of two (one statement a chunk, so a batch of any
  size needs at most a handful of statements, and the statement cache holds a few
  texts per table, not one per batch size);
- updates with one value set for every row as ``WHERE id IN (SELECT value FROM
  json_each(?))`` (:func:`json_list`);
- updates with values of their own per row as ``UPDATE ... FROM (SELECT ... FROM
  json_each(?))``, one JSON array of rows (:func:`json_rows`, :data:`JSON_COLUMN`);
- reads of many rows as ONE row: ``json_group_array(json_array(...))`` read back with
  :func:`select_rows`. Fetching rows steps once a row, and so does a ``RETURNING``
  clause, each step a wait for the lock: the three reads a batch of final outcomes
  made cost about 340 re-acquisitions for 114 messages, and the writer's commits took
  twice their CPU time in wall time (``SELECT``s instead of ``RETURNING`` where the
  ids changed are wanted).

Statements stay under 999 bound parameters (the smallest limit an SQLite build may
have).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterable, Sequence

__all__ = ["JSON_COLUMN", "insert_rows", "json_list", "json_rows", "select_rows"]

#: The smallest ``SQLITE_MAX_VARIABLE_NUMBER`` of any SQLite build (before 3.32).
MAX_PARAMETERS = 999
#: Rows a statement at most, whatever the width.
MAX_ROWS = 64


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[object]], tail: str = ""
) -> list[Any]:
    """Run ``head VALUES (?,..), (?,..), ... tail`` for ``rows``, in order, in few
    statements; returns what they returned (with a ``RETURNING`` tail), in no set order.

    ``head`` is everything before ``VALUES`` (``INSERT [OR ...] INTO t (a, b, ...)``),
    ``tail`` what follows the values (``ON CONFLICT ...``, ``RETURNING ...``); every row
    has the same width. Rows are inserted in the order given, so rowids that SQLite
    picks rise with it.
    """
    returned: list[Any] = []
    if not rows:
        return returned
    width = len(rows[0])
    group = "(" + ",".join("?" * width) + ")"
    largest = 1
    while largest * 2 <= min(MAX_ROWS, MAX_PARAMETERS // width):
        largest *= 2
    start, total = 0, len(rows)
    while start < total:
        size = largest
        while size > total - start:
            size //= 2
        chunk = rows[start : start + size]
        params = [value for row in chunk for value in row]
        cursor = conn.execute(f"{head} VALUES {','.join([group] * size)} {tail}", params)
        if tail:
            returned.extend(cursor.fetchall())
        start += size
    return returned


def json_list(values: Iterable[object]) -> str:
    """The parameter for ``IN (SELECT value FROM json_each(?))``."""
    return json.dumps(list(values), separators=(",", ":"))


def json_rows(rows: Iterable[Sequence[object]]) -> str:
    """The parameter for ``FROM json_each(?)`` whose ``value`` is one row, read back
    with :data:`JSON_COLUMN` (text, integers and NULL only: no blobs)."""
    return json.dumps([list(r) for r in rows], separators=(",", ":"))


def select_rows(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> list[Any]:
    """The rows of ``sql``, a query whose one result is a JSON array (of arrays, for
    rows of several columns: ``SELECT json_group_array(json_array(a, b)) FROM ...``),
    read in one step. Text, integers and NULL only."""
    (text,) = conn.execute(sql, params).fetchone()
    rows: list[Any] = json.loads(text)
    return rows


#: Column ``n`` of a :func:`json_rows` row: ``JSON_COLUMN.format(n)``.
JSON_COLUMN = "json_extract(value, '$[{}]')"
