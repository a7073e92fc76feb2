"""sd_notify over a real unix datagram socket; the systemd unit file's key settings."""

from __future__ import annotations

import configparser
import os
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio

from smppgw.app.systemd import Notifier, monotonic_usec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from trio.testing import MockClock

UNIT = Path(__file__).resolve().parent.parent / "config" / "smppgw.service"


class Systemd:
    """The receiving end of ``$NOTIFY_SOCKET``: a bound unix datagram socket."""

    def __init__(self, sock: trio.socket.SocketType, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def notifier(self, **env: str) -> Notifier:
        return Notifier.from_environment({"NOTIFY_SOCKET": self.env_value, **env}, clock=lambda: 42)

    async def receive(self) -> bytes:
        with trio.fail_after(5):
            return await self.sock.recv(65536)


@asynccontextmanager
async def bound(address: str | bytes, env_value: str) -> AsyncIterator[Systemd]:
    with trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(address)
        yield Systemd(sock, env_value)


@pytest.fixture
async def systemd(tmp_path: Path) -> AsyncIterator[Systemd]:
    path = str(tmp_path / "notify")
    assert len(path) < 100, "unix socket paths are limited to 108 bytes"
    async with bound(path, path) as s:
        yield s


@pytest.fixture
async def abstract_systemd() -> AsyncIterator[Systemd]:
    name = f"smppgw-test-{uuid.uuid4().hex}"
    async with bound(b"\0" + name.encode(), "@" + name) as s:
        yield s


async def test_ready_with_status(systemd: Systemd) -> None:
    notifier = systemd.notifier()
    assert notifier.enabled
    assert await notifier.ready("2 carriers bound")
    assert await systemd.receive() == b"READY=1\nSTATUS=2 carriers bound"
    assert await notifier.ready()
    assert await systemd.receive() == b"READY=1"


async def test_reloading_carries_the_monotonic_time(systemd: Systemd) -> None:
    notifier = systemd.notifier()
    assert await notifier.reloading()
    assert await systemd.receive() == b"RELOADING=1\nMONOTONIC_USEC=42"
    assert await notifier.reloading("reading smppgw.yaml")
    assert await systemd.receive() == (
        b"RELOADING=1\nMONOTONIC_USEC=42\nSTATUS=reading smppgw.yaml"
    )


async def test_stopping_status_extend_and_raw_notify(systemd: Systemd) -> None:
    notifier = systemd.notifier()
    assert await notifier.stopping()
    assert await systemd.receive() == b"STOPPING=1"
    assert await notifier.stopping("unbinding")
    assert await systemd.receive() == b"STOPPING=1\nSTATUS=unbinding"
    assert await notifier.status("draining: 12 left")
    assert await systemd.receive() == b"STATUS=draining: 12 left"
    assert await notifier.extend_timeout(2.5)
    assert await systemd.receive() == b"EXTEND_TIMEOUT_USEC=2500000"
    assert await notifier.watchdog()
    assert await systemd.receive() == b"WATCHDOG=1"
    assert await notifier.notify("ERRNO=5\nSTATUS=é")
    assert await systemd.receive() == "ERRNO=5\nSTATUS=é".encode()


async def test_a_status_cannot_inject_assignments(systemd: Systemd) -> None:
    notifier = systemd.notifier()
    await notifier.status("line one\nREADY=1\r\nline three")
    assert await systemd.receive() == b"STATUS=line one READY=1 line three"
    await notifier.ready("a\nb")
    assert await systemd.receive() == b"READY=1\nSTATUS=a b"


async def test_abstract_socket(abstract_systemd: Systemd) -> None:
    notifier = abstract_systemd.notifier()
    assert notifier.address == b"\0" + abstract_systemd.env_value[1:].encode()
    assert await notifier.ready()
    assert await abstract_systemd.receive() == b"READY=1"


async def test_not_under_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not await notifier.ready("x")
    assert not await notifier.reloading()
    assert not await notifier.stopping()
    assert not await notifier.watchdog()
    with trio.fail_after(1):
        await notifier.watchdog_loop()  # returns at once


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234", "@"])
def test_unsupported_or_empty_notify_socket_disables(value: str) -> None:
    assert not Notifier.from_environment({"NOTIFY_SOCKET": value}).enabled


def test_from_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_environment()
    assert notifier.address == "/run/systemd/notify"
    assert notifier.watchdog_interval == 30.0


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1234"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "999"}, None),  # another process's
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_from_environment(env: dict[str, str], interval: float | None) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "/run/n", **env}, pid=1234)
    assert notifier.watchdog_interval == interval


def test_no_watchdog_without_a_socket() -> None:
    assert Notifier.from_environment({"WATCHDOG_USEC": "30000000"}).watchdog_interval is None
    with pytest.raises(ValueError, match="watchdog_interval"):
        Notifier("/run/n", watchdog_interval=0)


async def test_watchdog_pings_at_half_the_interval(
    systemd: Systemd, autojump_clock: MockClock
) -> None:
    notifier = systemd.notifier(WATCHDOG_USEC="10000000")
    assert notifier.watchdog_interval == 10.0
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(notifier.watchdog_loop)
        for _ in range(4):
            # Virtual seconds: each ping comes within 5 s (6 leaves no tie with its sleep).
            with trio.fail_after(6):
                assert await systemd.sock.recv(65536) == b"WATCHDOG=1"
            times.append(trio.current_time())
        nursery.cancel_scope.cancel()
    # One ping at once, then one every 5 virtual seconds: never two, never late.
    assert times == [0.0, 5.0, 10.0, 15.0]


async def test_a_missing_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    assert not await notifier.ready()


async def test_watchdog_loop_survives_a_missing_socket(
    tmp_path: Path, autojump_clock: MockClock
) -> None:
    notifier = Notifier(str(tmp_path / "gone"), watchdog_interval=2.0)
    with trio.move_on_after(10):
        await notifier.watchdog_loop()
    assert trio.current_time() == 10.0


def test_monotonic_usec_is_clock_monotonic() -> None:
    import time

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    value = monotonic_usec()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= value <= after


# -- the unit file -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    # strict=False: systemd allows repeated keys; interpolation=None: ``$MAINPID`` and
    # ``%`` specifiers are systemd's, not configparser's; optionxform keeps the case.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_runs_the_daemon_as_a_notify_service(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"] == (
        "/opt/smppgw/.venv/bin/smppgw run --config /etc/smppgw/smppgw.yaml"
    )
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["WatchdogSec"] == "30"
    assert service["Restart"] == "on-failure"
    assert service["TimeoutStopSec"] == "30"
    assert service["User"] == "smppgw"
    assert service["WorkingDirectory"] == "/var/lib/smppgw"
    assert service["StateDirectory"] == "smppgw"
    assert service["LimitNOFILE"] == "65536"
    assert service["CPUWeight"] == "200"  # favoured on a busy host: latency
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]
    assert "network-online.target" in unit["Unit"]["Wants"]


def test_unit_is_sandboxed(unit: configparser.ConfigParser) -> None:
    service = unit["Service"]
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "RestrictSUIDSGID",
        "LockPersonality",
    ):
        assert service[key] == "yes", key
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/smppgw"
    assert service["CapabilityBoundingSet"] == ""
    # AF_UNIX stays allowed: the notify socket is one.
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert service["UMask"] == "0077"
    # SystemCallFilter is repeated (allow list, then deny list); configparser keeps the last.
    assert service["SystemCallFilter"] == "~@privileged @resources"
    assert service["SystemCallErrorNumber"] == "EPERM"
    # SIGTERM stops, SIGHUP reloads: the defaults the daemon handles.
    assert "KillSignal" not in service
    assert "ReloadSignal" not in service


def test_unit_repeats_system_call_filter() -> None:
    lines = UNIT.read_text().splitlines()
    assert [line for line in lines if line.startswith("SystemCallFilter=")] == [
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
    ]


def test_unit_comments_stand_on_their_own_lines() -> None:
    # systemd has no trailing comments: ``Key=value # note`` would be part of the value.
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            assert "#" not in line, line


def test_unit_has_no_unknown_sections(unit: configparser.ConfigParser) -> None:
    assert unit.sections() == ["Unit", "Service", "Install"]
