"""Operator imports: members, monthly spend, scratch-card codes, gifts, subscriber profiles.

``tabular`` reads CSV/XLSX rows, ``records`` validates them, ``run`` imports a file into
the store (whose SQL is ``smppgw.store.inventory``), ``cli`` is ``smppgw import`` and
``smppgw inventory``. The daemon's admin socket commands are in ``smppgw.app.admin_imports``.
"""
