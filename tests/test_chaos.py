"""Chaos test (issue 8): minutes of random faults, then every invariant from the records.

The gateway (``smppgw run``) and the simulated SMSC (``smppgw sim``) run as separate
processes; two partners submit and take receipts; subscribers text ``TD <code>`` to the
shipped points scenario. A seeded schedule (``SMPPGW_CHAOS_SEED`` replays one; the seed
is printed) plays, one after another: SMSC connections dropped (``drop_after``),
throttling and queue-full bursts, slow and missing responses (some beyond the carrier's
response timeout), binds refused while the connection is cut, the daemon killed with
SIGKILL (sometimes again while it recovers) and started on the same journal, MO bursts;
and the partners leave on their own, sometimes with a receipt dropped unanswered.

Then all faults go off, the daemon runs until the journal has nothing unfinished, and
the checks of ``chaos_tools.check_invariants`` run against what the partners and the
simulator recorded (not what the gateway says about itself). The timing of a run is
not reproducible, the schedule is; a failure prints its seed and the summary table.

The short version (about 45-60 s) runs in CI; the long one (``--run-slow``) lasts
``SMPPGW_CHAOS_SECONDS`` (default 300) of chaos.
"""

from __future__ import annotations

import faulthandler
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from chaos_checks import Mo, Report, check_invariants, read_journal, unfinished
from chaos_tools import NO_FAULTS, DaemonProcess, Partner, Ports, SimProcess, write_config

from smppgw.cli import main
from smppgw.sim.control import request_json
from smppgw.sim.smsc import SimulatedSmsc

REPO_SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
PARTNERS = ("p1", "p2")
MEMBERS = 30
CODES = 80


@dataclass
class Chaos:
    """The run's shared state and counters (what the summary prints)."""

    rng: random.Random
    sim: SimProcess
    daemon: DaemonProcess
    db: Path
    partners: list[Partner] = field(default_factory=list)
    kills: int = 0
    kills_in_recovery: int = 0
    run_bounds: list[int] = field(default_factory=list)
    mos: list[Mo] = field(default_factory=list)
    episodes: dict[str, int] = field(default_factory=dict)
    possible_duplicates: float = 0.0
    #: (wall-clock time, what): to read a failure against the journal's times.
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        self.timeline.append((time.time(), what))

    def epoch(self) -> int:
        return self.kills

    async def _recorded(self) -> int:
        page = await self.sim.call("GET", f"/submits?since={10**12}")
        return int(page["next"])

    async def kill(self) -> None:
        """SIGKILL the daemon, note where its run ends in the simulator's records."""
        self.possible_duplicates += (
            await self.daemon.metric("smppgw_mt_possible_duplicates_total") or 0.0
        )
        await self.daemon.kill()
        self.note("SIGKILL")
        self.kills += 1
        # The dead process's last submits may still sit in the simulator's socket
        # buffer: let it read them before the run's boundary is taken.
        await trio.sleep(0.3)
        self.run_bounds.append(await self._recorded())

    async def schedule(self, seconds: float) -> None:
        """Fault episodes, one at a time, until ``seconds`` have passed."""
        rng = self.rng
        end = time.monotonic() + seconds
        kinds = ["throttle", "queue_full", "slow", "drop", "refuse", "silent", "kill", "mo"]
        weights = [3, 2, 3, 3, 2, 2, 3, 2]
        while time.monotonic() < end:
            await trio.sleep(rng.uniform(0.5, 2.5))
            kind = rng.choices(kinds, weights)[0]
            self.episodes[kind] = self.episodes.get(kind, 0) + 1
            self.note(kind)
            hold = rng.uniform(0.5, 3.0)
            if kind == "throttle":
                await self.sim.faults(throttle_every=rng.randint(2, 6))
            elif kind == "queue_full":
                await self.sim.faults(queue_full_every=rng.randint(2, 6))
            elif kind == "slow":
                # Sometimes beyond the carrier's 2 s response timeout: resent, maybe twice.
                await self.sim.faults(response_delay=round(rng.uniform(0.2, 2.6), 2))
            elif kind == "drop":
                await self.sim.faults(drop_after=rng.randint(2, 40))
            elif kind == "refuse":
                await self.sim.faults(refuse_binds=True, drop_after=rng.randint(1, 5))
            elif kind == "silent":
                await self.sim.faults(never_answer=True)
                hold = rng.uniform(0.5, 2.5)
            elif kind == "kill":
                await self._kill_and_restart()
                continue
            else:
                for _ in range(rng.randint(5, 15)):
                    await self.inject_mo()
                continue
            await trio.sleep(hold)
            await self.sim.faults(**NO_FAULTS)
            self.note("faults off")

    async def _kill_and_restart(self) -> None:
        rng = self.rng
        if self.daemon.running:
            await self.kill()
        await trio.sleep(rng.uniform(0.1, 1.5))
        if rng.random() < 0.25:
            # Killed again in the middle of its start-up (recovery, resending).
            await self.daemon.start(wait=False)
            self.note("start (to be killed in recovery)")
            await trio.sleep(rng.uniform(0.2, 1.5))
            await self.kill()
            self.kills_in_recovery += 1
            await trio.sleep(0.2)
        await self.daemon.start()
        self.note("started")

    async def mo_stream(self, stop: trio.Event) -> None:
        while not stop.is_set():
            await self.inject_mo()
            await trio.sleep(self.rng.expovariate(1.5))

    async def inject_mo(self) -> None:
        """A subscriber texts 8055: mostly a fresh-ish code, sometimes someone else's
        code, the same code again, a wrong code, a balance query, or an unknown number."""
        rng = self.rng
        member = rng.randrange(MEMBERS)
        msisdn = f"8491000{member:04d}"
        roll = rng.random()
        if roll < 0.7:
            text = f"TD C{rng.randrange(CODES):05d}"
        elif roll < 0.8:
            text = f"TD X{rng.randrange(10**4):04d}"
        elif roll < 0.9:
            text = "DIEM"
        else:
            msisdn = f"8499{rng.randrange(10**7):07d}"
            text = f"TD C{rng.randrange(CODES):05d}"
        self.mos.append(Mo(msisdn, text, self.kills))
        await self.sim.mo(msisdn, text)


async def _setup(tmp_path: Path, ports: Ports, seconds: float) -> Path:
    """Config, the points scenario, members, codes and the partners' orders, all written
    while the daemon is stopped (``smppgw import``/``order add`` on the store)."""
    folder = tmp_path / "scenarios"
    folder.mkdir()
    shutil.copy(REPO_SCENARIOS / "points.yaml", folder / "points.yaml")
    config = write_config(tmp_path, ports, PARTNERS)
    members = ["msisdn,member_id,name,province"]
    members += [f"8491000{i:04d},HN{i:06d},Member {i},HN" for i in range(MEMBERS)]
    (tmp_path / "members.csv").write_text("\n".join(members) + "\n")
    codes = ["code,points"] + [f"C{i:05d},{10 + i % 7}" for i in range(CODES)]
    (tmp_path / "codes.csv").write_text("\n".join(codes) + "\n")
    # p2's order runs out during the chaos (ESME_RX_R_APPN from then on).
    small = max(50, int(seconds * 9))
    for argv in (
        ["import", "members", str(tmp_path / "members.csv")],
        ["import", "codes", str(tmp_path / "codes.csv"), "--campaign", "chaos"],
        ["order", "add", "p1", "--count", "1000000"],
        ["order", "add", "p2", "--count", str(small)],
    ):
        assert await trio.to_thread.run_sync(main, [*argv, "-c", str(config)]) == 0, argv
    return config


async def _drain(chaos: Chaos, within: float) -> dict[str, Any]:
    """Faults off, daemon up, partners bound and quiet: wait until nothing moves."""
    await chaos.sim.faults(**NO_FAULTS)
    for partner in chaos.partners:
        partner.chaos = partner.sending = False
    if not chaos.daemon.running:
        await chaos.daemon.start()
    state: dict[str, Any] = {}
    quiet = 0
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await trio.sleep(0.5)
        state = await trio.to_thread.run_sync(unfinished, chaos.db)
        stats = await chaos.sim.stats()
        state["sim_queued"] = stats["queued"]
        state["partners_unbound"] = sum(p._link is None for p in chaos.partners)
        quiet = quiet + 1 if not any(state.values()) else 0
        if quiet >= 3:
            return state
    return state


async def run_chaos(tmp_path: Path, seconds: float, *, drain_within: float) -> Report:
    seed = int(os.environ.get("SMPPGW_CHAOS_SEED", random.randrange(2**32)))
    print(f"\nchaos seed {seed} ({seconds:.0f} s): replay with SMPPGW_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    ports = Ports()
    config = await _setup(tmp_path, ports, seconds)
    sim = SimProcess(tmp_path, ports, seed)
    daemon = DaemonProcess(config, ports)
    chaos = Chaos(rng, sim, daemon, tmp_path / "gw.sqlite")
    report = Report()
    report.row("seed", seed)
    try:
        await sim.start()
        await daemon.start()
        chaos.partners = [
            Partner(sid, ports.server, random.Random(rng.random()), chaos.epoch, rate=rate)
            for sid, rate in zip(PARTNERS, (25.0, 12.0), strict=True)
        ]
        stop_mo = trio.Event()
        async with trio.open_nursery() as nursery:
            for partner in chaos.partners:
                nursery.start_soon(partner.run)
            nursery.start_soon(chaos.mo_stream, stop_mo)
            await chaos.schedule(seconds)
            stop_mo.set()
            drained = await _drain(chaos, drain_within)
            report.row("left unfinished at the drain deadline", drained)
            submits = await sim.all_submits()
            stats = await sim.stats()
            chaos.possible_duplicates += (
                await daemon.metric("smppgw_mt_possible_duplicates_total") or 0.0
            )
            for partner in chaos.partners:
                partner.finished = True
                if partner._link is not None:
                    partner._link.close("test over")
        await daemon.stop()
        journal = await trio.to_thread.run_sync(read_journal, chaos.db)
    finally:
        await daemon.stop()
        await sim.stop()
    report.row("daemon kills (in recovery) / starts",
               f"{chaos.kills} ({chaos.kills_in_recovery}) / {daemon.starts}")  # fmt: skip
    report.row("fault episodes", dict(sorted(chaos.episodes.items())))
    report.row("simulator binds ok / refused", f"{stats['binds_ok']} / {stats['binds_refused']}")
    report.row("gateway possible duplicates (scraped, lower bound)", chaos.possible_duplicates)
    report.row(
        "partner sessions / leaves (with receipts pending)",
        ", ".join(
            f"{p.system_id} {p.sessions}/{p.disconnects} ({p.disconnects_with_pending})"
            for p in chaos.partners
        ),
    )
    check_invariants(journal, submits, chaos.run_bounds, chaos.partners, chaos.mos, report)
    if any(drained.values()):
        report.fail(f"not drained within {drain_within} s: {drained}")
    timeline = "\n".join(f"{t:.3f} {what}" for t, what in chaos.timeline)
    (tmp_path / "timeline.txt").write_text(timeline + "\n")
    print(report.table())
    if report.violations:
        print(f"timeline (unix ms = journal times / 1000), also in {tmp_path}:\n{timeline}")
    return report


async def test_chaos_short(tmp_path: Path) -> None:
    report = await run_chaos(tmp_path, 30.0, drain_within=40.0)
    assert not report.violations, report.table()


@pytest.mark.slow
async def test_chaos_long(tmp_path: Path) -> None:
    # Minutes by design: pytest's faulthandler_timeout (120 s) would only dump stacks.
    faulthandler.cancel_dump_traceback_later()
    seconds = float(os.environ.get("SMPPGW_CHAOS_SECONDS", "300"))
    report = await run_chaos(tmp_path, seconds, drain_within=120.0)
    assert not report.violations, report.table()


async def test_submits_route_pages_every_record() -> None:
    """``GET /submits`` (added for this test) pages by absolute index and says when
    records fell off the bounded record."""
    from smppgw.sim.control import serve_control
    from smppgw.sim.smsc import SimConfig

    sim = SimulatedSmsc(SimConfig(max_records=3))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_control, sim)
        from smppgw.protocol.pdus import SubmitSm
        from smppgw.sim.smsc import _Session

        session = _Session.__new__(_Session)
        session.id, session.system_id, session.submits = "s", "gw", 0
        sim.faults.never_answer = True  # recorded, not answered: no link needed
        for i in range(5):
            sim._on_submit(session, SubmitSm(destination_addr=f"849{i}", short_message=b"t%d" % i))
        status, page = await request_json("127.0.0.1", port, "GET", "/submits?since=0&limit=2")
        assert status == 200
        assert page == {
            "first": 2,
            "next": 4,
            "submits": [["8492", "t2", "", None, "s", ""], ["8493", "t3", "", None, "s", ""]],
        }
        _, page = await request_json("127.0.0.1", port, "GET", "/submits?since=4")
        assert (page["next"], [r[0] for r in page["submits"]]) == (5, ["8494"])
        _, page = await request_json("127.0.0.1", port, "GET", "/submits?since=5")
        assert (page["next"], page["submits"]) == (5, [])
        nursery.cancel_scope.cancel()
