"""Operators' reports read from the journal: per partner, order, carrier, short code,
recipients, and the MO/MT log; rendered as tables, CSV or Excel.

The SQL lives in :mod:`smppgw.store.reports` (the store is the only place that speaks
SQL); this package turns its figures into rows with totals and writes them out.
"""
