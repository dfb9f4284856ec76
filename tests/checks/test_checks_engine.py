"""The RADIUS plugins against the real billing engine (`vigil radiusd`, embedded SQLite)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from billing.stats_files import read_engine
from tests.checks.checks_fixtures import run_check, write_config
from vigil.testing.ports import free_port
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins

VIGIL = str(Path(sys.executable).with_name("vigil"))


@dataclass
class Engine:
    conf: Path
    proc: subprocess.Popen[bytes]
    state: Path


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    state = tmp_path / "state"
    state.mkdir()
    conf = write_config(tmp_path / "vigil.conf", state, {
        "Radius": {"Host": "127.0.0.1", "Auth_Port": free_port(socket.SOCK_DGRAM),
                   "Acct_Port": free_port(socket.SOCK_DGRAM), "Stats_Interval_sec": 1},
        "Log": {"Log_Dest": str(tmp_path / "billing.log")},
    })
    env = {**os.environ, "VIGIL_CONF": str(conf)}
    subprocess.run([VIGIL, "db", "upgrade"], env=env, check=True, capture_output=True,
                   timeout=60)
    proc = subprocess.Popen([VIGIL, "radiusd"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def counting() -> bool:
            assert proc.poll() is None, "vigil radiusd exited"
            return (state / "radiusd-stats.json").exists()

        wait_until(counting, 20, 0.1, what="vigil radiusd wrote its counters")
        yield Engine(conf, proc, state)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_engine_answers_auth_and_accounting(engine: Engine) -> None:
    r = run_check("radius_auth", config=engine.conf)
    assert r.rc == 0 and "Access-Accept" in r.line, r
    r = run_check("radius_acct", config=engine.conf)
    assert r.rc == 0 and "Accounting-Response" in r.line, r
    r = run_check("open_fds", "--engine", config=engine.conf)
    # one engine process per core by default: the fullest of them is reported
    pid = re.search(r"pid (\d+)\)? has \d+ of", r.line)
    assert r.rc == 0 and pid, r
    running = {p.pid for p in read_engine(engine.state, max_age=10).live}
    assert int(pid.group(1)) in running, (r, running)
    if len(running) > 1:
        assert f"of {len(running)} (pid" in r.line, r
    assert run_check("file_age", config=engine.conf).rc == 0  # the engine logs


def test_engine_counters_and_rejects(engine: Engine, tmp_path: Path) -> None:
    assert run_check("auth_failures", "--min-requests", "1", config=engine.conf).rc == 0
    bad = write_config(tmp_path / "bad.conf", engine.state, {
        **_radius_section(engine.conf), "Self Test": {"Password": "wrong"}})
    for _ in range(3):
        assert run_check("radius_auth", config=bad).rc == 2
    assert run_check("radius_auth", config=engine.conf).rc == 0
    def four_answered() -> bool:  # every engine process writes its counters every second
        stats = read_engine(engine.state, max_age=10)
        return stats.total("access_accepts") + stats.total("access_rejects") >= 4

    wait_until(four_answered, 15, 0.2, what="the counters show the four requests")
    r = run_check("auth_failures", "--min-requests", "1", config=engine.conf)
    assert r.rc == 2 and "75.0% rejected (3 of 4" in r.line, r


def test_engine_stopped_is_critical(engine: Engine) -> None:
    engine.proc.send_signal(signal.SIGTERM)
    engine.proc.wait(15)
    r = run_check("radius_auth", "-t", "2", config=engine.conf)
    assert r.rc == 2, r
    time.sleep(2.2)  # the silence is the thing under test: the counters age past --max-age 2
    r = run_check("radius_drops", "--max-age", "2", config=engine.conf)
    assert r.rc == 2 and "not updated for" in r.line, r


def _radius_section(conf: Path) -> dict[str, dict[str, object]]:
    import configparser

    p = configparser.ConfigParser(interpolation=None)
    p.optionxform = str  # type: ignore[assignment,method-assign]
    p.read(conf)
    return {"Radius": dict(p["Radius"]), "Log": dict(p["Log"])}


def test_radcheck_plugin_follows_the_real_radcheck(engine: Engine, tmp_path: Path) -> None:
    conf = write_config(tmp_path / "rc.conf", engine.state, {
        **_radius_section(engine.conf),
        "Self Test": {"Test_Frequency_sec": 1, "Timeout_sec": 1, "Errors_Before_Restart": 100,
                      "Path_To_Lock_File": str(tmp_path / "radcheck.pid")},
        "Email": {"SMTP_Port": free_port()},
    })
    env = {**os.environ, "VIGIL_CONF": str(conf)}
    radcheck = subprocess.Popen([VIGIL, "radcheck"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        def tested() -> bool:
            assert radcheck.poll() is None, "vigil radcheck exited"
            return (engine.state / "radcheck.json").exists()

        wait_until(tested, 20, 0.1, what="radcheck wrote its first result")
        r = run_check("radcheck", config=conf)
        assert r.rc == 0 and "last self-test passed" in r.line, r
        engine.proc.send_signal(signal.SIGTERM)
        engine.proc.wait(15)
        r = wait_until(lambda: (c := run_check("radcheck", config=conf)).rc == 2 and c, 20,
                       0.5, what="the radcheck plugin saw the failed self-test")
        assert "last self-test failed" in r.line, r
    finally:
        radcheck.send_signal(signal.SIGTERM)
        try:
            radcheck.wait(15)
        except subprocess.TimeoutExpired:
            radcheck.kill()
            radcheck.wait()


def test_billing_plugins_on_calls_the_engine_rated(engine: Engine) -> None:
    """xDRs written by the real engine (demo data, `vigil call`): rate, ASR, ACD, DB."""
    env = {**os.environ, "VIGIL_CONF": str(engine.conf)}
    demo = Path(__file__).parents[2] / "etc" / "demo" / "provision.yaml"
    subprocess.run([VIGIL, "provision", str(demo)], env=env, check=True, capture_output=True,
                   timeout=60)
    os.kill(engine.proc.pid, signal.SIGHUP)  # reload nodes
    # logged by the packet loop, which reloads before it reads the next request
    log = engine.conf.parent / "billing.log"
    wait_until(lambda: "SIGHUP: reloading nodes" in log.read_text(errors="replace"), 15,
               what="the engine took the SIGHUP")
    for duration in (120, 60, 0):
        p = subprocess.run([VIGIL, "call", "--duration", str(duration)], env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
    r = run_check("xdr_rate", "--window", "5", config=engine.conf)
    assert r.rc == 0 and "(3 in the last 5 min)" in r.line, r
    r = run_check("asr", "--window", "5", "--min-calls", "1", config=engine.conf)
    assert r.rc == 0 and "ASR 66.7% (2 of 3 calls connected" in r.line, r
    r = run_check("acd", "--window", "5", "--min-calls", "1", config=engine.conf)
    assert r.rc == 0 and "ACD 90s over 2 connected" in r.line, r
    assert run_check("db_query", config=engine.conf).rc == 0
    assert run_check("active_calls", config=engine.conf).line.startswith(
        "ACTIVE_CALLS OK: 0 calls in progress")
