"""MO in parts reach the scenario as one message (``scenarios/mo_parts.py``).

Before, a subscriber's long text ran the scenario with part 1's words and got the help
reply for every other part.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port, write_config
from hypothesis import given
from hypothesis import strategies as st

from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.protocol.text import decode_text
from smppgw.scenarios.mo_parts import MoAssembler, WholeMo, part_of
from smppgw.sim.mo import build_mo
from smppgw.sim.smsc import SimulatedSmsc

if TYPE_CHECKING:
    import random

ME = "84912345678"
PROBE = """
name: probe
short_codes: ["8099"]
handler: echo
commands:
  echo: {keywords: [ECHO]}
"""


def _text(whole: WholeMo) -> str:
    return decode_text(whole.pdu.short_message or whole.pdu.tlvs[-1].value, whole.pdu.data_coding)


@given(
    st.text(alphabet="abc xyzĐđ", min_size=161, max_size=600),
    st.randoms(use_true_random=False),
    st.integers(0, 3),
)
def test_parts_in_any_order_and_repeated_make_one_message(
    text: str, rng: random.Random, repeats: int
) -> None:
    parts = build_mo(ME, "8099", text, reference=7)
    fed = [(i + 1, pdu) for i, pdu in enumerate(parts)]
    fed += [rng.choice(fed) for _ in range(repeats)]
    rng.shuffle(fed)
    assembler = MoAssembler(timeout=60)
    ready: list[WholeMo] = []
    for n, (inbound_id, pdu) in enumerate(fed):
        part = part_of(pdu)
        assert part is not None
        ready += assembler.add(inbound_id, pdu, part, now=float(n))
    [whole] = [w for w in ready if not w.repeat]
    assert whole.complete
    assert _text(whole) == text
    assert whole.inbound_ids[0] == 1  # the first part's row answers for the message
    # Every row is answered for once: by the message, or as a repeat that came late.
    answered = [i for w in ready for i in w.inbound_ids]
    assert sorted(answered) == sorted(i for i, _ in fed)
    assert not whole.pdu.esm_class & 0x40
    assert assembler.waiting == 0


def test_missing_parts_are_waited_for_then_the_rest_is_handled() -> None:
    first, _second, third = build_mo(ME, "8099", "x" * 400, reference=9)
    assembler = MoAssembler(timeout=60)
    for inbound_id, pdu in ((10, first), (12, third)):
        part = part_of(pdu)
        assert part is not None
        assert assembler.add(inbound_id, pdu, part, now=0.0) == []
    assert assembler.next_deadline() == 60.0
    assert assembler.expire(59.9) == []
    [whole] = assembler.expire(60.0)
    assert not whole.complete
    assert whole.inbound_ids == (10, 12)
    assert _text(whole) == "x" * (153 + 94)  # parts 1 and 3 of 153 + 153 + 94


def test_waiting_messages_are_bounded() -> None:
    assembler = MoAssembler(timeout=60, max_groups=2)
    out: list[WholeMo] = []
    for reference in range(3):
        pdu = build_mo(ME, "8099", "y" * 200, reference=reference)[0]
        part = part_of(pdu)
        assert part is not None
        out += assembler.add(reference, pdu, part, now=0.0)
    assert [w.inbound_ids for w in out] == [(0,)]  # the oldest went on, incomplete
    assert assembler.waiting == 2


def test_a_whole_message_is_not_a_part() -> None:
    [single] = build_mo(ME, "8099", "ECHO hi")
    assert part_of(single) is None


async def test_a_long_mo_runs_the_scenario_once_with_its_whole_text(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "probe.yaml").write_text(PROBE)
    config = str(write_config(tmp_path, sim_port=free_port()))
    daemon = Daemon(load_config(config), Path(config), handle_signals=False)
    words = " ".join(f"word{i}" for i in range(60))  # 2 GSM parts
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await wait_for(lambda: sum(r.client.binds_up for r in daemon.carriers.values()) == 1)
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        sim.inject_mo(ME, "8099", f"ECHO {words}")
        await wait_for(lambda: any(ME in r.destinations for r in sim.submits))
        await trio.sleep(0.5)  # a second reply (help for part 2) would be here by now
        replies = [r for r in sim.submits if ME in r.destinations]
        text = "".join(
            decode_text(
                r.short_message[r.short_message[0] + 1 :]
                if r.esm_class & 0x40
                else r.short_message,
                r.data_coding,
            )
            for r in replies
        )
        assert text == f"You said: {words}"
        assert daemon.store is not None
        rows = await daemon.store.read(
            lambda conn: conn.execute(
                "SELECT processed_at FROM inbound WHERE kind = 'mo'"
            ).fetchall()
        )
        assert len(rows) == len(build_mo(ME, "8099", f"ECHO {words}")) == 3
        assert all(processed is not None for (processed,) in rows)
        logged = await daemon.store.read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM message_log WHERE direction = 'mo'"
            ).fetchone()
        )
        assert logged == (1,)
        daemon.request_stop()
