"""``logging.mask_numbers`` on the MO path of a real daemon: no full subscriber number.

test_logs.py checks the masking processor on hand-made lines. That proves little about
the lines the daemon really writes: a number under a key the processor does not know
(``source``, ``to``...) or inside a traceback leaks all the same. So this test runs the
daemon with the built-in simulator, sends MOs through the carrier bind into the scenario
engine (a registration, an unknown keyword answered with help, a short code no scenario
owns) and an event, at debug level, and searches every line it wrote for the number.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import structlog
import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port, write_config

from smppgw.app.config import LoggingSettings, load_config
from smppgw.app.daemon import Daemon
from smppgw.app.logs import configure_logging
from smppgw.scenarios.handler import Event
from smppgw.sim.smsc import SimulatedSmsc

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SUBSCRIBER = "84912345678"
MASKED = "849*****678"


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """Every daemon log line, JSON, masked, at debug; global logging restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging(
        LoggingSettings(level="debug", format="json", mask_numbers=True), stream=buffer
    )
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = handlers
        root.setLevel(level)


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


async def test_mo_path_lines_never_hold_the_full_number(
    tmp_path: Path, log_buffer: io.StringIO
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name in ("registration", "airtime"):
        if (REPO_SCENARIOS / f"{name}.yaml").exists():
            shutil.copy(REPO_SCENARIOS / f"{name}.yaml", folder)
    path = write_config(tmp_path, sim_port=free_port())
    daemon = Daemon(load_config(path), path, handle_signals=False, grace=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await wait_for(lambda: sum(r.client.binds_up for r in daemon.carriers.values()) == 1)
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        assert daemon.scenarios is not None
        engine = daemon.scenarios.engine
        sim.inject_mo(SUBSCRIBER, "8055", "DK Nguyen Van An HN")  # a scenario step
        sim.inject_mo(f"+{SUBSCRIBER}", "8055", "WHAT IS THIS")  # the help reply
        sim.inject_mo(SUBSCRIBER, "7777", "HELLO")  # no scenario, no partner
        await wait_for(lambda: sum(engine.outcomes.values()) >= 1)
        await wait_for(lambda: sum(1 for r in sim.submits if SUBSCRIBER in r.destinations) >= 2)
        await wait_for(lambda: "MO for no partner's short code" in log_buffer.getvalue())
        # An event carries the number too (a top-up for a subscriber), keyed by it.
        await engine.on_event(Event("topup", SUBSCRIBER, {"amount": 50000}, f"t-{SUBSCRIBER}"))
        daemon.request_stop()
    lines = _lines(log_buffer)
    events = {line["event"] for line in lines}
    assert "scenario step committed" in events  # the MO path did log
    leaks = [line for line in lines if SUBSCRIBER in json.dumps(line)]
    assert leaks == []


def test_masking_covers_address_keys_of_the_carrier_path(log_buffer: io.StringIO) -> None:
    """Keys the carrier path logs subscriber numbers under (``carrier_inbound.py`` logs
    an ``alert_notification``'s ``source``), masked like ``source_addr``."""
    log = structlog.get_logger("smppgw.net.carrier_inbound")
    log.info("alert_notification", source=SUBSCRIBER, carrier="sim")
    (line,) = [line for line in _lines(log_buffer) if line["event"] == "alert_notification"]
    assert line["source"] == MASKED
    assert line["carrier"] == "sim"


def test_tracebacks_are_masked_too(log_buffer: io.StringIO) -> None:
    """A scenario handler failing on a number logs the exception (``exc_info``) with it."""
    log = structlog.get_logger("smppgw.scenarios")
    try:
        raise LookupError(f"no member {SUBSCRIBER}")
    except LookupError as exc:
        log.error("scenario handler failed", scenario="registration", exc_info=exc)
    (line,) = [line for line in _lines(log_buffer) if line["event"] == "scenario handler failed"]
    assert SUBSCRIBER not in json.dumps(line)
    assert MASKED in line["exception"]


def test_raw_pdu_text_is_masked(log_buffer: io.StringIO) -> None:
    """``carrier_inbound.py`` logs an unreadable receipt's raw bytes as ``text``."""
    log = structlog.get_logger("smppgw.net.carrier_inbound")
    log.warning("unreadable receipt", text=f"id:x sub:{SUBSCRIBER}".encode())
    (line,) = [line for line in _lines(log_buffer) if line["event"] == "unreadable receipt"]
    assert line["text"] == f"b'id:x sub:{MASKED}'"
