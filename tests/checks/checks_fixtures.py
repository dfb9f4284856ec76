"""Fixtures for the plugin tests: a real FreeRADIUS, a vigil.conf, a plugin runner.

Plugins run as real subprocesses (``vigil-check NAME ...``) so exit codes,
stdout and the ``-t`` alarm are exactly what Nagios and the scheduler see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from checks.testing import (  # noqa: F401  (re-exported for the test modules)
    SECRET,
    SELFTEST_PASSWORD,
    SELFTEST_USER,
    STARTED,
    FreeRadius,
    NTPResponder,
    start_freeradius,
    write_config,
    write_stats,
)

VIGIL_CHECK = str(Path(sys.executable).with_name("vigil-check"))


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def line(self) -> str:
        return self.out.rstrip("\n")


def run_check(name: str, *args: str, config: Path | None = None, timeout: float = 30,
              env: dict[str, str] | None = None) -> Result:
    argv = [VIGIL_CHECK, name, *args]
    if config is not None:
        argv += ["--config", str(config)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL")}
    full_env.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)
    return Result(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def conf(tmp_path: Path, state_dir: Path) -> Path:
    return write_config(tmp_path / "vigil.conf", state_dir)


@pytest.fixture(scope="session")
def freeradius() -> Iterator[FreeRadius]:
    try:
        fr = start_freeradius()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    yield fr
    fr.stop()
