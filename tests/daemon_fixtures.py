"""Config files and free ports for daemon tests."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(
    tmp_path: Path,
    *,
    sim_port: int,
    metrics_port: int | None = None,
    window: int = 16,
    binds: int = 1,
    extra_carrier: str = "",
    sim_process: bool = False,
) -> Path:
    """A daemon config: store in ``tmp_path``, the simulator as the carrier."""
    metrics = (
        f"metrics: {{listen: '127.0.0.1:{metrics_port}'}}"
        if metrics_port
        else "metrics: {enabled: false}"
    )
    text = f"""
store: {{path: '{tmp_path / "gw.sqlite"}', durability: process}}
{metrics}
admin_socket: '{tmp_path / "admin.sock"}'
scenarios: {{directory: '{tmp_path / "scenarios"}', events_dir: '{tmp_path / "events"}'}}
logging: {{level: info, format: json}}
simulator:
  enabled: true
  process: {"true" if sim_process else "false"}
  listen: 127.0.0.1:{sim_port}
  accounts: [{{system_id: gw, password: secret}}]
  receipt: {{delay_ms: 10}}
carriers:
  - name: sim
    host: 127.0.0.1
    port: {sim_port}
    system_id: gw
    password: secret
    window: {window}
    binds: {binds}
    reconnect: {{initial: 0.1, max: 0.5}}
{extra_carrier}
default_route: [sim]
server: {{listen: '127.0.0.1:{free_port()}'}}
"""
    path = tmp_path / "smppgw.yaml"
    path.write_text(text)
    return path
