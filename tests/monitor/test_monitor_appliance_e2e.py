"""`make run` as the NOC meets it (scripts/run-appliance.sh, every program under
supervisord, real engine, radcheck, scheduler, NSCA chain, nagios4, lighttpd):

- the banner names the dashboard's http URL on 127.0.0.1 and the demo login, and a
  headless chromium sees hosts by site and services by subsystem there;
- a clean start pages nobody: zero PROBLEM mails in the 150 s after it, no
  CRITICAL service (the demo is green), each result reaches Nagios once;
- a `kill -STOP` of the engine shows in Nagios.

Long (about four minutes): marked e2e. The web port is a free one (environment
override, which supervisord hands to every program); RADIUS and NSCA ports are
picked free by run-appliance.sh itself when the usual ones are taken.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import nagios_status
from monitor.testing import chromium
from vigil.testing.appliance import REPO, Appliance, clean_env, running
from vigil.testing.ports import free_port
from vigil.testing.wait import poll, wait_until

pytestmark = pytest.mark.e2e

CLEAN_START_SEC = 150


def nagios(app: Appliance) -> nagios_status.Status:
    return nagios_status.read(app.run / "state" / "nagios" / "var" / "status.dat")


@pytest.fixture
def appliance(tmp_path: Path) -> Iterator[Appliance]:
    # The shipped checks, except the load thresholds: this test machine is shared by
    # several engineers and its load is theirs, not the appliance's start.
    checks = (REPO / "etc" / "checks.conf").read_text()
    shipped_load = "args = -m 5 --per-cpu -w 2 -c 4"
    assert shipped_load in checks
    (tmp_path / "checks.conf").write_text(
        checks.replace(shipped_load, "args = -m 5 --per-cpu -w 50 -c 100"))
    env = clean_env({"VIGIL__MONITOR__CHECKS_FILE": str(tmp_path / "checks.conf"),
                     "VIGIL__MONITOR__WEB_PORT": str(free_port()),
                     # the engine stays stopped for the kill -STOP step (restarts are
                     # radcheck's own tests); a clean start is not affected
                     "VIGIL__SELF_TEST__ERRORS_BEFORE_RESTART": "1000"})
    want = {"radiusd", "radcheck", "monitor-scheduler", "nagios", "nagios-web", "mail-sink",
            "nsca-server", "nsca-relay", "nsca-central"}
    with running(Appliance(tmp_path / "run", env), want) as app:
        yield app


def test_make_run_dashboard_quiet_start_and_a_hung_engine(appliance: Appliance,
                                                         tmp_path: Path) -> None:
    app = appliance
    banner = app.out.read_text()
    m = re.search(r"dashboard\s+(http://127\.0\.0\.1:(\d+)/)\s+\(login (\S+) / (\S+)\)", banner)
    assert m, banner
    url, port, user, password = m.group(1), m.group(2), m.group(3), m.group(4)
    assert port == app.env["VIGIL__MONITOR__WEB_PORT"]

    # hosts by site, services by subsystem, as the browser shows them
    auth_url = url.replace("http://", f"http://{user}:{password}@")
    assert wait_until(lambda: "vigil-primary" in chromium(
        tmp_path, auth_url + "cgi-bin/nagios4/status.cgi?hostgroup=all&style=overview"), 60, 2)
    sites = chromium(tmp_path, auth_url + "cgi-bin/nagios4/status.cgi?hostgroup=all"
                     "&style=overview")
    assert "Site site-a" in sites
    subsystems = chromium(tmp_path, auth_url + "cgi-bin/nagios4/status.cgi?servicegroup=all"
                          "&style=overview")
    for group in ("Subsystem radius", "Subsystem billing", "Subsystem system"):
        assert group in subsystems, group

    # a clean start pages nobody
    deadline = app.started + CLEAN_START_SEC
    while time.monotonic() < deadline:
        # on failure: what paged, and what the plugin said (the mail's Info line)
        assert app.problem_subjects() == [], [re.findall(r"^(?:Subject|Info): .*$", m, re.M)
                                              for m in app.mails()]
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    assert app.problem_subjects() == []
    st = nagios(app)
    services = st.services_of("vigil-primary")
    assert len(services) >= 20
    checked = [s for s in services if s.get("has_been_checked") == "1"]
    assert len(checked) == len(services), [s["service_description"] for s in services
                                           if s not in checked]
    critical = [(s["service_description"], s.get("plugin_output")) for s in services
                if s.get("current_state") == "2"]
    assert critical == []
    replication = next(s for s in services if s["service_description"] == "Replication")
    assert replication["current_state"] == "0"
    assert "not configured" in replication["plugin_output"]

    # each result reaches Nagios once: one passive result per service per pass
    passes = app.run.joinpath("log", "monitor-scheduler.log").read_text().count("pass of ")
    nagios_log = (app.run / "state" / "nagios" / "var" / "nagios.log").read_text()
    memory = nagios_log.count("PASSIVE SERVICE CHECK: vigil-primary;Memory;")
    assert 1 <= memory <= passes, (memory, passes)

    # kill -STOP of the engine: Nagios shows the RADIUS services CRITICAL
    pid = app.programs()["radiusd"]["pid"]
    os.killpg(pid, signal.SIGSTOP)  # every engine process (one per core) with its parent
    try:
        def radius_critical() -> bool:
            s = nagios(app).service("vigil-primary", "RADIUS authentication") or {}
            return s.get("current_state") == "2"

        assert poll(radius_critical, 150, 2), nagios(app).service(
            "vigil-primary", "RADIUS authentication")
    finally:
        os.killpg(pid, signal.SIGCONT)
    # and on-call hears of it (Nagios runs the mail after its state change)
    assert poll(lambda: any("RADIUS authentication is CRITICAL" in s
                                  for s in app.problem_subjects()), 60, 1), app.mails()
