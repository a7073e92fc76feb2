"""``scripts/bench_embedded.py`` rewrites ``config/smppgw.yaml``: the result must still
be the embedded default, with only the ports, paths, logging, metrics and the
simulator's placement changed (a change to the default config must not leave the
benchmark measuring something else)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from smppgw.app.config import default_config, load_config

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _embedded_config(workdir: Path, **ports: int | bool) -> Path:
    sys.path.insert(0, str(SCRIPTS))  # the script imports its neighbours
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_embedded", SCRIPTS / "bench_embedded.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    path: Path = module.embedded_config(workdir, **ports)
    return path


@pytest.mark.parametrize("process", [False, True])
def test_the_rewritten_config_is_the_embedded_default_elsewhere(
    tmp_path: Path, process: bool
) -> None:
    path = _embedded_config(tmp_path, server=31001, sim=31002, control=31003, process=process)
    got, default = load_config(path), default_config()
    assert got.server.listen.port == 31001
    assert got.simulator.listen.port == 31002 == got.carriers[0].port
    assert got.simulator.control is not None
    assert got.simulator.control.port == 31003
    assert got.simulator.process is process
    assert got.store.path == tmp_path / "gw.sqlite"
    assert not got.metrics.enabled
    assert got.partners == default.partners
    assert got.carriers[0].window == default.carriers[0].window
    assert got.store.durability == default.store.durability
