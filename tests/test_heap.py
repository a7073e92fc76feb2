"""The daemon's garbage-collector settings (``app/heap.py``), in a process of their own:
freezing is for the whole interpreter, which a test run must not get."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc
from smppgw.app.heap import YOUNG_THRESHOLD, settle_heap

started = [object() for _ in range(1000)]  # what the start made
frozen = settle_heap()
assert frozen == gc.get_freeze_count() > 1000, frozen
assert gc.get_threshold()[0] == YOUNG_THRESHOLD
# What is made later is still the collector's: a cycle made now is found and freed.
class Node:
    pass
a, b = Node(), Node()
a.other, b.other = b, a
del a, b
assert gc.collect() >= 2
print("ok")
"""


def test_settle_heap_freezes_the_start_and_still_collects_later_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
