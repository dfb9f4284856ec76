"""`vigil monitor ...` as an admin types it, on the shipped files and on broken ones."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from checks import catalog
from checks.catalog import BrokenCheck
from monitor.testing import write_conf
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins

ROOT = Path(__file__).resolve().parents[2]
VIGIL = str(Path(sys.executable).parent / "vigil")

CHECKS = """
[DEFAULT]
interval = 60
timeout = 10
roles = all

[disk]
service = Disk /
subsystem = system
args = -p / -w 99 -c 100

[dsik]
plugin = dsik
service = Disk typo
subsystem = system

[load]
service = Load
subsystem = system
args = -w 10:5 -c 20

[memory]
service = Memory
subsystem = system
roles = secondary
"""


def vigil(*args: str, conf: Path | None = None, timeout: float = 60,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [VIGIL] + (["-c", str(conf)] if conf else []) + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    (tmp_path / "checks.conf").write_text(CHECKS)
    (tmp_path / "sites.conf").write_text("[site site-a]\nvigil-a1 = primary\n"
                                         "[site site-b]\nvigil-b1 = secondary\n")
    return write_conf(tmp_path / "vigil.conf", {
        "Site": {"Role": "primary", "Name": "site-a", "Host_Name": "vigil-a1",
                 "State_Dir": tmp_path / "state"},
        "Log": {"Level": "INFO"},
        "NSCA": {"Config_Server": "127.0.0.1:9", "Password": "x", "Timeout_sec": 1},
        "Monitor": {"Checks_File": "checks.conf", "Sites_File": "sites.conf",
                    "Nagios_User": "root", "Nagios_Group": "root",
                    "On_Call_Email": "oncall@example.com", "Runbook_URL": "../docs",
                    # no engine or radcheck here: nothing to wait for at start
                    "Startup_Grace_sec": 0},
    })


def test_bad_checks_become_unknown_results_not_a_refused_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "checks.conf"
    path.write_text(CHECKS)
    specs = catalog.load_checks(path, "primary", tolerant=True)
    assert [s.name for s in specs] == ["disk", "dsik", "load"]  # memory is secondary-only
    dsik, load = specs[1], specs[2]
    assert isinstance(dsik, BrokenCheck) and isinstance(load, BrokenCheck)
    assert dsik.service_description == "Disk typo"
    assert dsik.problem.startswith(f"{path}:13: [dsik] plugin: plugin 'dsik' does not exist")
    assert f"{path}:20: [load] args" in load.problem and "10:5" in load.problem
    assert caplog.text.count("will report UNKNOWN") == 2
    every = catalog.load_checks(path, None, tolerant=True)
    assert [s.name for s in every] == ["disk", "dsik", "load", "memory"]


def test_unreadable_checks_file_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "checks.conf"
    path.write_text("[disk\nservice = x\n")
    with pytest.raises(catalog.CatalogError):
        catalog.load_checks(path, tolerant=True)
    with pytest.raises(catalog.CatalogError, match="checks file not found"):
        catalog.load_checks(tmp_path / "none.conf", tolerant=True)


def test_shipped_checks_file_loads_clean() -> None:
    specs = catalog.load_checks(ROOT / "etc" / "checks.conf", tolerant=True)
    assert specs and not [s for s in specs if isinstance(s, BrokenCheck)]


def test_run_once_table_and_json(conf: Path) -> None:
    proc = vigil("monitor", "run-once", conf=conf)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "STATE", "TIME", "OUTPUT"]
    rows = {ln.split()[0]: ln.split()[1] for ln in lines[1:4]}
    assert rows == {"disk": "OK", "dsik": "UNKNOWN", "load": "UNKNOWN"}
    assert "3 checks in" in proc.stdout and "1 OK, 0 WARNING, 0 CRITICAL, 2 UNKNOWN" in proc.stdout
    assert "check dsik will report UNKNOWN" in proc.stderr

    doc = json.loads(vigil("monitor", "run-once", "--json", conf=conf).stdout)
    assert doc["host"] == "vigil-a1"
    by = {c["check"]: c for c in doc["checks"]}
    assert by["disk"]["status"] == 0 and by["disk"]["service"] == "Disk /"
    assert by["dsik"]["output"].startswith("UNKNOWN - check dsik not run: ")


def test_run_once_send_spools_when_the_server_is_down(conf: Path, tmp_path: Path) -> None:
    doc = json.loads(vigil("monitor", "run-once", "--json", "--send", conf=conf).stdout)
    assert doc["sent"] == 0 and doc["waiting_passes"] == 1 and doc["send_error"]
    spool = tmp_path / "state" / "monitor-spool"
    assert len(list(spool.glob("*.json"))) == 1
    assert (spool.stat().st_mode & 0o777) == 0o700


def test_nagios_config_generates_and_verifies(conf: Path, tmp_path: Path) -> None:
    proc = vigil("monitor", "nagios-config", "--out", str(tmp_path / "out"), "--verify",
                 conf=conf)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 sites, 4 hosts, 9 services" in proc.stdout  # 3 + 4 checks, 2 heartbeats
    assert "configuration OK" in proc.stdout
    site_a = (tmp_path / "out" / "objects" / "site-site-a.cfg").read_text()
    assert "Disk typo" in site_a and "Memory" not in site_a  # roles respected
    assert "Memory" in (tmp_path / "out" / "objects" / "site-site-b.cfg").read_text()
    cmds = (tmp_path / "out" / "objects" / "commands.cfg").read_text()
    assert f"{VIGIL} -c {conf} alert send --no-rate-limit" in cmds
    assert f"file://{ROOT}/docs/checks.md#check-disk" not in site_a  # relative to the conf
    assert f"file://{tmp_path.parent}/docs/checks.md#check-disk" in site_a


def test_shipped_files_generate_a_valid_central_config(tmp_path: Path) -> None:
    proc = vigil("monitor", "nagios-config", "--out", str(tmp_path / "out"), "--verify",
                 conf=ROOT / "etc" / "vigil.conf",
                 env={"VIGIL__MONITOR__NAGIOS_USER": "root"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site_a = (tmp_path / "out" / "objects" / "site-site-a.cfg").read_text()
    # the shipped default: the dashboard's HTML runbooks, for services, hosts and sites
    assert "http://127.0.0.1:8080/runbooks/checks.html#check-disk" in site_a
    assert "http://127.0.0.1:8080/runbooks/monitor.html#host-down" in site_a
    assert "http://127.0.0.1:8080/runbooks/monitor.html#site-down" in site_a
    assert "action_url" in site_a and "/graphs/graph.cgi?host=$HOSTNAME$" in site_a


@pytest.mark.parametrize("sites,message", [
    (None, "cannot read the sites file"),
    ("[site a]\nh = boss\n", "'boss' is not '<role> [address]'"),
])
def test_nagios_config_bad_sites_exit_2(conf: Path, tmp_path: Path, sites: str | None,
                                        message: str) -> None:
    path = tmp_path / "sites.conf"
    if sites is None:
        path.unlink()
    else:
        path.write_text(sites)
    proc = vigil("monitor", "nagios-config", "--out", str(tmp_path / "out"), conf=conf)
    assert proc.returncode == 2 and message in proc.stderr


def test_inconsistent_thresholds_exit_2(conf: Path, tmp_path: Path) -> None:
    proc = vigil("monitor", "nagios-config", "--out", str(tmp_path / "out"), conf=conf,
                 env={"VIGIL__MONITOR__SITE_FRESHNESS_THRESHOLD_SEC": "150"})
    assert proc.returncode == 2
    assert "[Monitor] Site_Freshness_Threshold_sec: 150 must be at most" in proc.stderr


def test_missing_checks_file_exit_2(conf: Path, tmp_path: Path) -> None:
    (tmp_path / "checks.conf").unlink()
    for action in (["run-once"], ["scheduler"]):
        proc = vigil("monitor", *action, conf=conf)
        assert proc.returncode == 2 and "checks file not found" in proc.stderr


def test_nagios_refuses_to_run_a_config_nagios_rejects(conf: Path, tmp_path: Path) -> None:
    proc = vigil("monitor", "nagios", conf=conf,
                 env={"VIGIL__MONITOR__NAGIOS_BINARY": "/bin/false"})
    assert proc.returncode == 1 and "found problems" in proc.stderr


def test_scheduler_sigterm_is_clean_and_sighup_reloads(conf: Path, tmp_path: Path) -> None:
    env = {"VIGIL__MONITOR__PASS_PERIOD_SEC": "1"}
    log = tmp_path / "scheduler.log"
    with open(log, "wb") as fh:
        p = subprocess.Popen([VIGIL, "-c", str(conf), "monitor", "scheduler"], stdout=fh,
                             stderr=subprocess.STDOUT, env={**os.environ, **env})
        try:
            wait_until(lambda: "pass of 3 checks" in log.read_text(), 20, 0.1,
                       what="the scheduler ran a pass")
            (tmp_path / "checks.conf").write_text(CHECKS.replace("[dsik]", "[swap]")
                                                  .replace("plugin = dsik\n", ""))
            p.send_signal(signal.SIGHUP)
            wait_until(lambda: "checks reloaded" in log.read_text(), 20, 0.1,
                       what="the scheduler took the SIGHUP")
            p.send_signal(signal.SIGTERM)
            assert p.wait(10) == 0
        finally:
            if p.poll() is None:
                p.kill()
    text = log.read_text()
    assert "checks reloaded: 3 (were 3)" in text
    assert "cannot send to nsca://127.0.0.1:9" in text
    assert "SIGTERM received, stopping" in text and "scheduler for vigil-a1 stopped" in text
    # What could not be sent waits on disk for the next start.
    assert list((tmp_path / "state" / "monitor-spool").glob("*.json"))


def test_nagios_runs_in_the_foreground_and_stops_on_sigterm(conf: Path, tmp_path: Path) -> None:
    nagios_dir = tmp_path / "nagios"
    env = {"VIGIL__MONITOR__NAGIOS_DIR": str(nagios_dir),
           "VIGIL__NSCA__COMMAND_FILE": str(nagios_dir / "var" / "rw" / "nagios.cmd")}
    with open(tmp_path / "nagios.out", "wb") as fh:
        p = subprocess.Popen([VIGIL, "-c", str(conf), "monitor", "nagios"], stdout=fh,
                             stderr=subprocess.STDOUT, env={**os.environ, **env},
                             start_new_session=True)
        try:
            status = nagios_dir / "var" / "status.dat"
            command_file = nagios_dir / "var" / "rw" / "nagios.cmd"

            def running() -> bool:
                assert p.poll() is None, (tmp_path / "nagios.out").read_text()
                # Nagios opens its command pipe as its event loop starts,
                # which may come a moment after its first status file: one
                # CI run saw the status file and not yet the pipe.
                return status.exists() and command_file.is_fifo()

            wait_until(running, 30, 0.1, what="nagios wrote its status file and opened "
                       "its command pipe")
            # Nagios took the process's place: supervisor's signal reaches it directly.
            assert os.readlink(f"/proc/{p.pid}/exe") == "/usr/sbin/nagios4"
            p.send_signal(signal.SIGTERM)
            assert p.wait(20) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    out = (tmp_path / "nagios.out").read_text()
    assert "configuration OK" in out
    assert "Caught SIGTERM, shutting down" in (nagios_dir / "var" / "nagios.log").read_text()


def test_every_runbook_link_lands_on_an_anchor() -> None:
    import re

    checks_doc = (ROOT / "docs" / "checks.md").read_text()
    anchors = set(re.findall(r'<a id="(check-[a-z0-9_]+)"', checks_doc))
    missing = [s.name for s in catalog.load_checks(ROOT / "etc" / "checks.conf")
               if f"check-{s.name}" not in anchors]
    assert missing == []
    headings = re.findall(r"^### (\S+)$", (ROOT / "docs" / "monitor.md").read_text(), re.M)
    assert {"site-down", "host-down"} <= set(headings)
