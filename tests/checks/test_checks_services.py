"""Plugins that ask a service: a real supervisord, an NTP responder on loopback, a real
NSCA relay delivering to the Debian nsca daemon, the alert flood limiter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.clock_offset import from_ntp, to_ntp
from tests.checks.checks_fixtures import NTPResponder, run_check, write_config
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins

# ------------------------------------------------------------------ supervisord


@pytest.fixture(scope="module")
def supervisord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("supervisord")
    sock = d / "supervisor.sock"
    (d / "supervisord.conf").write_text(f"""\
[unix_http_server]
file={sock}
chmod=0700

[supervisord]
nodaemon=true
logfile={d}/supervisord.log
pidfile={d}/supervisord.pid
childlogdir={d}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:sleeper]
command=sleep 600
startsecs=0

[program:crasher]
command=/bin/false
startsecs=1
startretries=0
autorestart=false

[program:idle]
command=sleep 600
autostart=false
""")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("supervisord")), "-c",
                             str(d / "supervisord.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def crasher_given_up() -> bool:
            r = run_check("supervisor", "-S", str(sock), "-P", "crasher", "--state-dir", str(d))
            return "FATAL" in r.line or "BACKOFF" in r.line

        wait_until(crasher_given_up, 20, 0.2, what="supervisord gave up on the crasher")
        yield sock
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(20)


def test_supervisor_counts_programs_not_running(supervisord: Path, conf: Path) -> None:
    r = run_check("supervisor", "-S", str(supervisord), config=conf)
    assert r.rc == 2, r
    assert "2 of 3 programs not running" in r.line
    assert "crasher FATAL" in r.line and "idle STOPPED" in r.line
    assert "'not_running'=2;;0;0;3" in r.line


def test_supervisor_selected_programs(supervisord: Path, conf: Path) -> None:
    r = run_check("supervisor", "-S", str(supervisord), "-P", "sleeper", config=conf)
    assert r.rc == 0 and "all 1 programs running" in r.line, r
    r = run_check("supervisor", "-S", str(supervisord), "-P", "nosuch", config=conf)
    assert r.rc == 3 and "no program nosuch" in r.line, r


def test_supervisor_socket_from_supervisord_conf(supervisord: Path, conf: Path) -> None:
    sconf = supervisord.parent / "supervisord.conf"
    r = run_check("supervisor", "-C", str(sconf), "-P", "sleeper", config=conf)
    assert r.rc == 0, r
    # the appliance's supervisord.conf names the socket through %(ENV_...)s
    templ = supervisord.parent / "templ.conf"
    templ.write_text("[unix_http_server]\nfile=%(ENV_VIGIL_TEST_SOCK)s\n")
    r = run_check("supervisor", "-C", str(templ), "-P", "sleeper", config=conf,
                  env={"VIGIL_TEST_SOCK": str(supervisord)})
    assert r.rc == 0, r
    r = run_check("supervisor", "-C", str(templ), config=conf)
    assert r.rc == 3 and "VIGIL_TEST_SOCK is not set" in r.line, r


def test_supervisor_socket_from_config(supervisord: Path, tmp_path: Path,
                                       state_dir: Path) -> None:
    cfg = write_config(tmp_path / "s.conf", state_dir,
                       {"Supervisor": {"Socket_File": str(supervisord)}})
    assert run_check("supervisor", "-P", "sleeper", config=cfg).rc == 0


def test_supervisor_hung_is_critical_within_t(supervisord: Path, conf: Path) -> None:
    pid = int((supervisord.parent / "supervisord.pid").read_text())
    os.kill(pid, signal.SIGSTOP)  # the socket still accepts; nothing answers
    try:
        r = run_check("supervisor", "-S", str(supervisord), "-t", "2", config=conf, timeout=20)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert r.rc == 2 and "SUPERVISOR CRITICAL" in r.line, r


def test_supervisor_not_running_is_critical(tmp_path: Path, conf: Path) -> None:
    r = run_check("supervisor", "-S", str(tmp_path / "none.sock"), config=conf)
    assert r.rc == 2 and "no supervisord" in r.line, r


# ------------------------------------------------------------------------ NTP


def test_ntp_timestamp_round_trip() -> None:
    t = 1_700_000_000.25
    assert abs(from_ntp(to_ntp(t)) - t) < 1e-6


@pytest.mark.parametrize(("skew", "rc"), [(0.0, 0), (0.7, 1), (-0.7, 1), (3.0, 2), (-3.0, 2)])
def test_clock_offset(skew: float, rc: int, conf: Path) -> None:
    ntp = NTPResponder(skew)
    try:
        r = run_check("clock_offset", "-H", "127.0.0.1", "-p", str(ntp.port), config=conf)
    finally:
        ntp.close()
    assert r.rc == rc, r
    measured_ms = float(r.line.split("clock offset ")[1].split(" ms")[0])
    assert abs(measured_ms - skew * 1000) < 50, r


def test_clock_offset_unsynchronised_or_silent_server(conf: Path) -> None:
    ntp = NTPResponder(stratum=16)
    try:
        r = run_check("clock_offset", "-H", "127.0.0.1", "-p", str(ntp.port), config=conf)
    finally:
        ntp.close()
    assert r.rc == 2 and "not synchronised" in r.line, r
    ntp = NTPResponder(silent=True)
    try:
        r = run_check("clock_offset", "-H", "127.0.0.1", "-p", str(ntp.port), "-t", "1",
                      config=conf)
    finally:
        ntp.close()
    assert r.rc == 2 and ("no answer" in r.line or "timeout" in r.line), r


# --------------------------------------------------------------------- alerts


def test_alerts_held_by_the_flood_limiter(tmp_path: Path, state_dir: Path) -> None:
    from vigil import config
    from vigil.alerts import limiter_for

    cfg_path = write_config(tmp_path / "a.conf", state_dir,
                            {"Email": {"Max_Sequential_Emails": 2, "Look_Behind_sec": 600}})
    r = run_check("alerts_held", config=cfg_path)
    assert r.rc == 0 and "no alerts held back" in r.line, r
    limiter = limiter_for(config.load(cfg_path))
    for i in range(5):
        limiter.admit(f"RADIUS down {i}")
    r = run_check("alerts_held", config=cfg_path)
    assert r.rc == 1, r
    assert "3 alerts held back by the flood limit" in r.line and "RADIUS down 2" in r.line


# ----------------------------------------------------------------------- NSCA


def test_nsca_spool_and_delivery_with_a_real_relay(tmp_path: Path, state_dir: Path) -> None:
    from nsca.relay import NSCADestination, Relay
    from nsca.result import CheckResult
    from nsca.spool import Record, SpoolWriter
    from nsca.testing import RealNSCA

    central = RealNSCA(tmp_path / "central", password="pw").start()
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, seal_interval=0.05)
    relay = Relay(spool, [NSCADestination("127.0.0.1", central.port, password="pw",
                                          batch_size=20)], retry_min=0.2, retry_max=0.5)
    cfg = write_config(tmp_path / "n.conf", state_dir, {"NSCA": {
        "Spool_Dir": str(spool), "Central_Servers": f"127.0.0.1:{central.port}"}})
    relay_thread = threading.Thread(target=relay.run, daemon=True)
    relay_thread.start()

    def put(n: int, start: int) -> None:
        ticket = writer.append(Record(os.urandom(16), CheckResult("h1", f"svc{start + i}", 0,
                                                                 "OK", time.time()))
                               for i in range(n))
        assert writer.wait_sealed(ticket, 10)

    try:
        put(30, 0)
        assert wait_until(lambda: len(central.lines()) >= 30, 20)
        assert wait_until(lambda: "0 waiting" in run_check("nsca_spool", config=cfg).line, 10)
        r = run_check("nsca_spool", config=cfg)
        assert r.rc == 0 and f"nsca-127.0.0.1-{central.port}: 0 waiting" in r.line, r
        r = run_check("nsca_delivery", config=cfg)
        assert r.rc == 0 and "caught up" in r.line, r
        central.stop()  # the central server goes away; results pile up
        put(25, 30)
        time.sleep(1.5)  # the clock is under test: the backlog ages past nsca_delivery's -w 1
        r = run_check("nsca_spool", "-w", "10", config=cfg)
        assert r.rc == 1 and "25 waiting" in r.line, r
        r = run_check("nsca_delivery", "-w", "1", "-c", "3600", config=cfg)
        assert r.rc == 1 and "25 waiting for" in r.line, r
        central.start()
        assert wait_until(lambda: run_check("nsca_spool", config=cfg).line.endswith(
            f"'backlog_nsca-127.0.0.1-{central.port}'=0;;;0"), 20)
    finally:
        relay.stop()
        relay_thread.join(30)
        writer.close()
        central.stop()


def test_nsca_not_configured_is_unknown(conf: Path) -> None:
    r = run_check("nsca_delivery", config=conf)
    assert r.rc == 3 and "no central servers configured" in r.line, r


def test_clock_offset_without_a_server_is_ok_not_configured(conf: Path) -> None:
    r = run_check("clock_offset", config=conf)
    assert r.rc == 0 and "CLOCK_OFFSET OK: not configured: no NTP server" in r.line, r
