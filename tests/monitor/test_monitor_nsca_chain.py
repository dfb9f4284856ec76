"""The production path: `vigil monitor scheduler` -> `vigil nsca server` (configuration
server, spool) -> `vigil nsca relay` -> `vigil nsca server` (central, Nagios command
file) -> nagios4 -> status.dat; SIGTERM the scheduler and on-call gets one mail.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks import catalog
from monitor.nagios_status import Status
from monitor.sites import parse as parse_sites
from monitor.testing import FAST, CentralNagios, write_conf
from vigil.testing.ports import free_port
from vigil.testing.smtp import SMTPSink
from vigil.testing.wait import poll, wait_until

pytestmark = pytest.mark.e2e

VIGIL = str(Path(sys.executable).parent / "vigil")
PASSWORD = "chain-s3cret"
# Real plugins through the real checks file; 10 s is the shortest interval it allows.
CHECKS = """
[DEFAULT]
interval = 10
timeout = 5
roles = all

[disk]
service = Disk /
subsystem = system
args = -p / -w 99 -c 100

[disk_strict]
plugin = disk
service = Disk / strict
subsystem = system
args = -p / -w 1 -c 99
"""


class Proc:
    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self.fh = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(argv, stdout=self.fh, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        self.fh.close()
        return rc

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_port(port: int, timeout: float = 15) -> None:
    import socket

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    assert poll(up, timeout, 0.05), f"nothing on port {port}"


@pytest.fixture
def chain(tmp_path: Path, smtp: SMTPSink) -> Iterator[dict]:
    checks_path = tmp_path / "checks.conf"
    checks_path.write_text(CHECKS)
    checks = catalog.load_checks(checks_path, tolerant=True)
    central_conf = write_conf(tmp_path / "central-mail.conf", {
        "Site": {"Role": "central", "Name": "central", "Host_Name": "vigil-central",
                 "State_Dir": tmp_path / "central-state"},
        "Global": {"last_resort_email": "admin@example.com",
                   "email_header_from": "nagios@example.com"},
        "Email": {"SMTP_Host": "127.0.0.1", "SMTP_Port": smtp.port, "SMTP_Timeout_sec": 5},
    })
    nagios = CentralNagios(tmp_path / "nagios", parse_sites("[site site-c]\nvigil-c1 = primary\n"),
                           checks, notify_command=f"{VIGIL} -c {central_conf} alert send "
                                                  "--no-rate-limit")
    cs_port, central_port = free_port(), free_port()
    nsca = {"Password": PASSWORD, "Encryption_Method": 1}
    cs_conf = write_conf(tmp_path / "config-server.conf", {
        "Site": {"Role": "central", "State_Dir": tmp_path / "cs-state"},
        "Log": {"Level": "INFO"},
        "NSCA": {**nsca, "Listen_Port": cs_port, "Server_Output": "spool",
                 "Spool_Dir": tmp_path / "cs-spool",
                 "Central_Servers": f"127.0.0.1:{central_port}"},
    })
    central_nsca_conf = write_conf(tmp_path / "central-nsca.conf", {
        "Site": {"Role": "central", "State_Dir": tmp_path / "central-nsca-state"},
        "Log": {"Level": "INFO"},
        "NSCA": {**nsca, "Listen_Port": central_port, "Server_Output": "command_file",
                 "Command_File": nagios.command_file},
    })
    procs: list[Proc] = []
    # Nagios starts in the test, once the scheduler runs: with thresholds of
    # seconds, the chain's start-up would otherwise already count as silence.
    try:
        procs.append(Proc("central-nsca", [VIGIL, "-c", str(central_nsca_conf), "nsca",
                                           "server"], tmp_path / "central-nsca.log"))
        procs.append(Proc("cs-nsca", [VIGIL, "-c", str(cs_conf), "nsca", "server"],
                          tmp_path / "cs-nsca.log"))
        procs.append(Proc("relay", [VIGIL, "-c", str(cs_conf), "nsca", "relay"],
                          tmp_path / "relay.log"))
        wait_port(central_port)
        wait_port(cs_port)
        yield {"tmp": tmp_path, "nagios": nagios, "checks": checks, "cs_port": cs_port,
               "procs": procs}
    finally:
        for p in reversed(procs):
            p.stop()
        nagios.stop()


def test_scheduler_through_vigil_nsca_to_nagios_and_sigterm_pages(chain: dict,
                                                                  smtp: SMTPSink) -> None:
    tmp: Path = chain["tmp"]
    nagios: CentralNagios = chain["nagios"]
    conf = write_conf(tmp / "vigil-c1.conf", {
        "Site": {"Role": "primary", "Name": "site-c", "Host_Name": "vigil-c1",
                 "State_Dir": tmp / "c1-state"},
        "Log": {"Level": "INFO"},
        "NSCA": {"Config_Server": f"127.0.0.1:{chain['cs_port']}", "Password": PASSWORD,
                 "Encryption_Method": 1},
        "Monitor": {"Checks_File": tmp / "checks.conf", "Pass_Period_sec": 1,
                    "Startup_Grace_sec": 0},  # no engine here to wait for
    })
    sched = Proc("scheduler", [VIGIL, "-c", str(conf), "monitor", "scheduler"],
                 tmp / "scheduler.log")
    # Results sent before Nagios made its command file wait in the central NSCA server.
    wait_until(lambda: "pass of" in (tmp / "scheduler.log").read_text(errors="replace"), 20,
               what="the scheduler sent its first pass")
    nagios.start()
    try:
        def reported(st: Status) -> bool:
            disk = st.service("vigil-c1", "Disk /")
            strict = st.service("vigil-c1", "Disk / strict")
            host = st.host("vigil-c1")
            return (disk is not None and disk.get("plugin_output", "").startswith("DISK OK: ")
                    and strict is not None and strict.get("current_state") == "1"
                    and host is not None and host.get("has_been_checked") == "1")

        st = nagios.wait_status(reported, 30)
        assert st.host("vigil-c1")["current_state"] == "0"  # type: ignore[index]
        perf = st.service("vigil-c1", "Disk /")["performance_data"]  # type: ignore[index]
        assert perf.startswith("'used'=") and ";99;100;0;100" in perf
        assert smtp.messages == []

        # Stop the scheduler as supervisor does: clean exit, its plugins gone.
        stopped = time.monotonic()
        assert sched.stop(signal.SIGTERM, 10) == 0
        assert "stopped" in sched.text()

        # A 10-second check gets three of its intervals before it is stale.
        threshold = max(FAST.service_sec, 30)
        stale = f"CRITICAL - no data for {threshold} s"

        def silent(st: Status) -> bool:
            return (st.service("vigil-c1", "Disk /") or {}).get("plugin_output") == stale \
                and (st.host("site-c") or {}).get("current_state") == "1"

        nagios.wait_status(silent, threshold + FAST.check_interval_sec + 6)
        assert time.monotonic() - stopped < threshold + FAST.check_interval_sec + 6
        msgs = smtp.wait_for(1, 10)
        time.sleep(2)  # under test: no second mail comes (silence)
        subjects = [m["Subject"] for m in smtp.messages]
        assert subjects == ["PROBLEM: site site-c is DOWN"], subjects
        assert "SITE DOWN" in msgs[0].get_content()
    finally:
        sched.stop()
