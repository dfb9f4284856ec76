"""The checked scenario, with real processes only: supervisord (etc/supervisord.conf
through `vigil supervisord`), radcheck, FreeRADIUS as the RADIUS program, an
aiosmtpd server on loopback, radclient as a gateway.

`kill -STOP` the RADIUS program: radcheck must restart it within
Errors_Before_Restart x (Test_Frequency_sec + Timeout_sec) + a few seconds,
calls are accepted again, and exactly one outage and one recovery mail
arrive. More outages inside Look_Behind_sec stay within Max_Sequential_Emails.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.radcheck.radcheck_peers import (
    SECRET,
    Appliance,
    FreeRadius,
    base_conf,
    radclient_auth,
    write_conf,
)
from vigil.pidlock import pid_alive
from vigil.testing.smtp import SMTPSink
from vigil.testing.wait import poll

pytestmark = pytest.mark.e2e

N, FREQ, TIMEOUT = 2, 1, 1


@pytest.fixture
def appliance(tmp_path: Path, smtp: SMTPSink) -> Iterator[tuple[Appliance, FreeRadius]]:
    fr = FreeRadius(tmp_path / "raddb")
    sections = base_conf(tmp_path, radius_port=fr.port, smtp_port=smtp.port,
                         extra={"Self Test": {"Errors_Before_Restart": N,
                                              "Test_Frequency_sec": FREQ,
                                              "Timeout_sec": TIMEOUT}})
    conf = write_conf(tmp_path / "vigil.conf", sections)
    extra = tmp_path / "programs"
    extra.mkdir()
    # FreeRADIUS stands in for `vigil radiusd`: same block shape as etc/supervisor/site/.
    (extra / "freeradius.conf").write_text(
        "[program:freeradius]\n"
        f"command={' '.join(fr.command)}\n"
        "priority=100\nstartsecs=1\nstopsignal=TERM\nstopwaitsecs=10\n"
        "redirect_stderr=true\nstdout_logfile=%(ENV_VIGIL_LOG_DIR)s/freeradius.log\n")
    app = Appliance(conf, ["--only", "radcheck", "--include", f"{extra}/*.conf"]).start()
    try:
        assert poll(lambda: app.all_running({"freeradius", "radcheck"}), 30), \
            app.out.read_text()
        yield app, fr
    finally:
        app.stop()


def radcheck_state(app: Appliance) -> dict:
    path = Path(app.conf.parent / "state" / "radcheck.json")
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def outage(app: Appliance, restarts_before: int) -> tuple[float, int, int]:
    """kill -STOP the RADIUS program; (seconds until radcheck restarted it, old, new pid)."""
    old = app.pid("freeradius")
    t0 = time.monotonic()
    os.kill(old, signal.SIGSTOP)
    back = poll(lambda: (s := radcheck_state(app)).get("restarts", 0) > restarts_before
                    and s.get("ok"), timeout=N * (FREQ + TIMEOUT) + 30)
    elapsed = time.monotonic() - t0
    assert back, f"radcheck did not bring the engine back: {radcheck_state(app)}"
    new = app.pid("freeradius")
    return elapsed, old, new


def test_stopped_engine_is_restarted_and_alerted_once(appliance, smtp: SMTPSink,
                                                      tmp_path: Path) -> None:
    app, fr = appliance
    assert poll(lambda: radcheck_state(app).get("ok"), 15)
    assert radclient_auth(fr.port, SECRET, tmp_path)
    status = app.vigil("status")
    assert status.returncode == 0 and "radcheck: OK" in status.stdout

    elapsed, old, new = outage(app, 0)
    bound = N * (FREQ + TIMEOUT)
    print(f"\nkill -STOP -> restarted and answering again in {elapsed:.1f} s "
          f"(bound {bound} s + a few)")
    # Restarted after exactly N failed tests, each bounded by Timeout_sec and
    # Test_Frequency_sec apart: that is the bound; the seconds are printed.
    assert f"after {N} consecutive self-test failures" in \
        (tmp_path / "log" / "radcheck.log").read_text()
    assert new != old and not pid_alive(old)
    assert radclient_auth(fr.port, SECRET, tmp_path)  # calls are accepted again

    msgs = smtp.wait_for(2, timeout=10)
    time.sleep(2 * FREQ)  # nothing more may come
    msgs = smtp.messages
    assert [m["X-Vigil-Kind"] for m in msgs] == ["radcheck-outage", "radcheck-recovery"]
    assert msgs[0]["To"] == "oncall@example.com"
    assert f"freeradius was RUNNING (pid {old})" in msgs[0].get_content()
    log = (tmp_path / "log" / "radcheck.log").read_text()
    assert "restarting freeradius after 2 consecutive self-test failures" in log
    sup_log = (tmp_path / "log" / "supervisord.log").read_text()
    assert "stopped: freeradius (exit status 0)" in sup_log  # SIGCONT let it stop cleanly

    # Four more outages within Look_Behind_sec: 2 + 8 mails wanted, 5 allowed.
    for i in range(4):
        outage(app, 1 + i)
    time.sleep(2)
    assert len(smtp.messages) == 5
    assert radcheck_state(app)["restarts"] == 5

    # Ctrl-C / SIGTERM stops every program cleanly.
    pids = [app.pid("freeradius"), app.pid("radcheck")]
    assert app.stop() == 0
    assert not any(pid_alive(p) for p in pids)
    assert "radcheck stopped" in (tmp_path / "log" / "radcheck.log").read_text()
    assert not (tmp_path / "run" / "radcheck.pid").exists()
    sup_log = (tmp_path / "log" / "supervisord.log").read_text()
    assert "stopped: radcheck (exit status 0)" in sup_log
    r = app.vigil("status")
    assert r.returncode == 3 and "no supervisord on" in r.stderr


def test_program_stopped_by_an_operator_is_not_restarted(appliance, smtp: SMTPSink,
                                                         tmp_path: Path) -> None:
    app, _ = appliance
    assert poll(lambda: radcheck_state(app).get("ok"), 15)
    r = app.vigil("supervisorctl", "stop", "freeradius")
    assert r.returncode == 0, r.stdout + r.stderr
    assert poll(lambda: radcheck_state(app).get("restarts", 0) >= 1, 20)
    assert app.programs()["freeradius"]["state"] == "STOPPED"
    msgs = smtp.wait_for(1, timeout=10)
    assert "FAILED: program freeradius was stopped by an operator; not restarting it" in \
        msgs[0].get_content()
    assert "nothing listens on" in msgs[0].get_content()  # the last error: refused
    status = app.vigil("status")
    assert status.returncode == 1 and "FAILING" in status.stdout
    app.vigil("supervisorctl", "start", "freeradius")
    assert poll(lambda: radcheck_state(app).get("ok"), 20)
    assert [m["X-Vigil-Kind"] for m in smtp.wait_for(2, timeout=10)] == \
        ["radcheck-outage", "radcheck-recovery"]
