"""The shipped demo scenario set, through the daemon, as the README walks a newcomer.

Every reply is read at the simulator (the carrier) and compared whole; the store is
checked after. The operator's data comes in with ``smppgw import`` while the daemon
runs, and the top-up with ``smppgw event``, as the README shows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import trio
from carrier_fixtures import wait_for
from daemon_fixtures import free_port, write_config

from smppgw.app.config import load_config
from smppgw.app.daemon import Daemon
from smppgw.cli import main
from smppgw.protocol.text import decode_text
from smppgw.sim.smsc import SimulatedSmsc, SubmitRecord

REPO_SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
ME = "84912345678"


def _text(record: SubmitRecord) -> str:
    payload = record.short_message
    if record.esm_class & 0x40:
        payload = payload[payload[0] + 1 :]
    return decode_text(payload, record.data_coding)


class _Phone:
    """A subscriber's handset: sends MO through the simulator, reads what it got."""

    def __init__(self, sim: SimulatedSmsc, msisdn: str = ME) -> None:
        self.sim = sim
        self.msisdn = msisdn
        self.read = 0

    def inbox(self) -> list[SubmitRecord]:
        return [r for r in self.sim.submits if self.msisdn in r.destinations]

    async def send(self, to: str, text: str, expect: int = 1) -> list[str]:
        self.sim.inject_mo(self.msisdn, to, text)
        return await self.wait(expect)

    async def wait(self, expect: int = 1) -> list[str]:
        await wait_for(lambda: len(self.inbox()) >= self.read + expect)
        new = self.inbox()[self.read :]
        self.read += len(new)
        return [_text(r) for r in new]


async def test_the_demo_set_end_to_end(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    shutil.copytree(REPO_SCENARIOS, folder)
    config = str(write_config(tmp_path, sim_port=free_port()))
    (tmp_path / "codes.csv").write_text("code,points\nABC123,20\nXYZ999,40\n")
    (tmp_path / "gifts.csv").write_text("gift_type,serial,pin,cost_points\nCARD50K,S001,1111,50\n")
    (tmp_path / "profiles.csv").write_text("msisdn,arpu_3m,balance\n84912345678,100000,0\n")
    daemon = Daemon(load_config(config), Path(config), handle_signals=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        await wait_for(lambda: sum(r.client.binds_up for r in daemon.carriers.values()) == 1)
        sim = daemon.simulator
        assert isinstance(sim, SimulatedSmsc)
        for kind, extra in (("codes", ["--campaign", "demo"]), ("gifts", []), ("profiles", [])):
            argv = ["import", kind, str(tmp_path / f"{kind}.csv"), "-c", config, *extra]
            assert await trio.to_thread.run_sync(main, argv) == 0, kind
        phone = _Phone(sim)

        # points before registering
        assert await phone.send("8055", "TD ABC123") == [
            f"So {ME} chua dang ky hoi vien. Soan DK <ho ten> <tinh> gui 8055 de dang ky."
        ]
        [registered] = await phone.send("8055", "DK Nguyen Van An HN")
        assert daemon.store is not None
        [(member_id,)] = await daemon.store.read(
            lambda c: c.execute("SELECT member_id FROM member").fetchall()
        )
        assert registered == (
            f"Chuc mung Nguyen Van An! Ban da dang ky thanh cong. Ma hoi vien: {member_id}."
        )
        assert member_id.startswith("HN")
        assert phone.inbox()[-1].source == "8055"

        assert await phone.send("8055", "td abc123") == [
            f"Ban duoc cong 20 diem tu ma ABC123. Tong diem hien tai: 20. Ma hoi vien: {member_id}."
        ]
        [again] = await phone.send("8055", "TD ABC123")
        assert again.startswith("Ma ABC123 ban da tich diem luc ")
        assert again.endswith("moi ma chi tich duoc mot lan. Tong diem hien tai: 20.")
        assert await phone.send("8055", "TD NOPE77") == [
            "Ma NOPE77 khong dung. Vui long kiem tra lai ma tren the cao."
        ]
        await phone.send("8055", "Tđ XYZ999")
        assert await phone.send("8055", "DIEM") == [
            f"Ma hoi vien {member_id}: tong diem hien tai 60."
        ]

        # redemption with confirmation: the gift's card comes under the brandname
        assert await phone.send("8055", "DOI CARD50") == [
            "Ban muon doi the cao 50.000d voi 50 diem (hien co 60 diem)? Soan Y gui 8055 de"
            " xac nhan, N de huy, trong 10 phut."
        ]
        replies = await phone.send("8055", "Y", expect=2)
        assert replies == [
            "Ban da doi the cao 50.000d voi 50 diem. Diem con lai: 10. Thong tin qua se duoc"
            " gui trong tin nhan tiep theo.",
            "Qua the cao 50.000d cua ban: so serial S001, ma PIN 1111. Cam on ban!",
        ]
        assert phone.inbox()[-1].source == "ACME"

        # airtime advance on 9090, then a top-up recovers it
        [airtime] = await phone.send("9090", "UNGDK")
        assert airtime.startswith("Ban da dang ky dich vu Ung tien thanh cong.")
        assert await phone.send("9090", "UNG 10000") == [
            "Ban da duoc ung 10.000d, phi 1.000d. So no 11.000d se duoc tru khi nap tien."
        ]
        argv = ["event", "topup", ME, "--set", "amount=50000", "--key", "topup-1", "-c", config]
        assert await trio.to_thread.run_sync(main, argv) == 0
        assert await phone.wait() == [
            "Ban da nap 50.000d. Da tru 11.000d tien ung va phi. Ban da thanh toan het khoan ung."
        ]
        assert await trio.to_thread.run_sync(main, argv) == 0  # the same key: nothing again
        await trio.sleep(0.3)
        assert phone.inbox()[phone.read :] == []

        state = await daemon.store.read(
            lambda c: (
                c.execute("SELECT points FROM member").fetchone()[0],
                c.execute(
                    "SELECT count(*) FROM code_inventory WHERE used_by IS NOT NULL"
                ).fetchone()[0],
                c.execute("SELECT assigned_to FROM gift_inventory").fetchone()[0],
                c.execute("SELECT state, recovered FROM advance").fetchone(),
            )
        )
        assert state == (10, 2, member_id, ("recovered", 11000))
        daemon.request_stop()
