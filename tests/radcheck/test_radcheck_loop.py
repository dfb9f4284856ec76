"""radcheck's counting, restarting and alerting, with a scripted probe.

The probe and the restarter are the replaceable edges (a list of results, a
recorder); the mail path is the real one: AlertWorker -> flood limiter state
file -> SMTP -> the aiosmtpd sink.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from radcheck.loop import RadCheck, Settings, supervisor_restarter
from radcheck.probe import ProbeResult, SelfTest
from tests.radcheck.radcheck_peers import base_conf, write_conf
from vigil import alerts, config
from vigil.runbooks import runbook_link
from vigil.supervisor_client import SupervisorError
from vigil.testing.ports import free_udp_port
from vigil.testing.smtp import SMTPSink

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins

OK = ProbeResult(True, "accept", None, 1.5)
TIMEOUT = ProbeResult(False, "timeout", "no answer from 127.0.0.1:1812 within 1 s", None)
REJECT = ProbeResult(False, "reject", "Access-Reject for 127.0.0.1", 2.0)

INTERFACE_KEYS = {"time", "ok", "consecutive_failures", "last_error", "rtt_ms", "restarts",
                  "last_restart", "pid"}


class Script:
    def __init__(self) -> None:
        self.results: list[ProbeResult] = []

    def __call__(self, test: SelfTest) -> ProbeResult:
        return self.results.pop(0)


class Restarts:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __call__(self, program: str) -> str:
        self.calls.append(program)
        if self.fail:
            raise SupervisorError("supervisord refused startProcess: SPAWN_ERROR")
        return f"{program} was RUNNING (pid 1), now RUNNING (pid 2)"


@pytest.fixture
def cfg(tmp_path: Path, smtp: SMTPSink) -> config.Config:
    sections = base_conf(tmp_path, radius_port=free_udp_port(), smtp_port=smtp.port,
                         extra={"Self Test": {"Errors_Before_Restart": 3},
                                "Radius": {"Program": "radiusd"}})
    return config.load(write_conf(tmp_path / "vigil.conf", sections))


@pytest.fixture
def worker(cfg: config.Config) -> Iterator[alerts.AlertWorker]:
    w = alerts.AlertWorker(cfg).start()
    yield w
    w.close(timeout=5)


def make(cfg: config.Config, worker: alerts.AlertWorker, restarts: Restarts | None = None
         ) -> tuple[RadCheck, Script, Restarts]:
    script, restarts = Script(), restarts or Restarts()
    check = RadCheck(cfg, Settings.from_config(cfg), probe=script, restarter=restarts,
                     notifier=worker)
    return check, script, restarts


def run(check: RadCheck, script: Script, *results: ProbeResult) -> None:
    script.results.extend(results)
    for _ in results:
        check.run_once()


def state(cfg: config.Config) -> dict:
    return json.loads((cfg.path("Site", "State_Dir") / "radcheck.json").read_text())


def test_one_outage_one_restart_one_mail_then_recovery(cfg, worker, smtp) -> None:
    check, script, restarts = make(cfg, worker)
    run(check, script, OK, TIMEOUT, TIMEOUT, OK)  # two failures: below the threshold
    assert restarts.calls == [] and state(cfg)["ok"] is True
    run(check, script, TIMEOUT, REJECT)
    s = state(cfg)
    assert set(s) >= INTERFACE_KEYS
    assert (s["ok"], s["consecutive_failures"], s["last_error"], s["restarts"]) == \
        (False, 2, "Access-Reject for 127.0.0.1", 0)
    run(check, script, TIMEOUT)  # third in a row: restart
    assert restarts.calls == ["radiusd"]
    assert state(cfg)["restarts"] == 1 and state(cfg)["last_restart"] is not None
    run(check, script, *[TIMEOUT] * 5)  # still down: the next restart after 2 x 3 failures
    assert restarts.calls == ["radiusd"]
    run(check, script, TIMEOUT)  # restarted again, no new mail
    assert restarts.calls == ["radiusd", "radiusd"]
    assert check.restart_threshold() == 12
    run(check, script, OK)
    assert check.restart_threshold() == 3  # a new outage starts from Errors_Before_Restart
    assert worker.close(timeout=10) == 0
    msgs = smtp.wait_for(2)
    assert [m["X-Vigil-Kind"] for m in msgs] == ["radcheck-outage", "radcheck-recovery"]
    assert "failed 3 times in a row" in msgs[0].get_content()
    assert "Restart of supervisor program 'radiusd': radiusd was RUNNING" in \
        msgs[0].get_content()
    assert "9 failed tests, 2 restart(s)" in msgs[1].get_content()
    # each mail says what to do first and links its runbook section
    link = runbook_link(cfg, "radcheck", "radcheck-outage")
    assert link.endswith("/radcheck.html#radcheck-outage")
    for m in msgs:
        body = m.get_content()
        assert "First step: " in body and f"Runbook: {link}" in body.splitlines(), body
        # the Subject is one line as sent, not folded before its first word
        raw_subject = dict(m.raw_items())["Subject"]
        assert raw_subject.startswith("[Vigil ") and "\n" not in raw_subject, raw_subject
    s = state(cfg)
    assert (s["ok"], s["consecutive_failures"], s["rtt_ms"], s["restarts"]) == (True, 0, 1.5, 2)


def test_restart_that_fails_is_logged_and_told(cfg, worker, smtp, caplog) -> None:
    check, script, _ = make(cfg, worker, Restarts(fail=True))
    with caplog.at_level(logging.ERROR):
        run(check, script, TIMEOUT, TIMEOUT, TIMEOUT)
    assert "could not restart radiusd: supervisord refused startProcess" in caplog.text
    worker.close(timeout=10)
    assert "FAILED: supervisord refused" in smtp.wait_for(1)[0].get_content()


def test_no_supervisord_is_a_failed_restart_not_a_crash(cfg, worker, smtp) -> None:
    check, script, _ = make(cfg, worker)
    check.restarter = supervisor_restarter(cfg)  # the real client; no supervisord runs
    run(check, script, TIMEOUT, TIMEOUT, TIMEOUT)
    worker.close(timeout=10)
    assert "FAILED: no supervisord on" in smtp.wait_for(1)[0].get_content()


def test_twenty_outages_inside_look_behind_give_at_most_max_mails(cfg, worker, smtp) -> None:
    check, script, restarts = make(cfg, worker)
    for _ in range(20):
        run(check, script, TIMEOUT, TIMEOUT, TIMEOUT, OK)
    assert len(restarts.calls) == 20
    assert worker.close(timeout=20) == 0
    smtp.wait_for(6, timeout=1)
    assert len(smtp.messages) == cfg.get("Email", "Max_Sequential_Emails") == 5
    held = alerts.limiter_for(cfg).held()
    assert held.count == 40 - 5  # counted for the summary in the next allowed mail


def test_alerted_outage_survives_a_radcheck_restart(cfg, worker, smtp) -> None:
    check, script, _ = make(cfg, worker)
    run(check, script, TIMEOUT, TIMEOUT, TIMEOUT)
    again, script2, restarts2 = make(cfg, worker)  # a new radcheck process
    assert again.outage_alerted and again.restarts == 1
    run(again, script2, OK)
    worker.close(timeout=10)
    assert [m["X-Vigil-Kind"] for m in smtp.wait_for(2)] == \
        ["radcheck-outage", "radcheck-recovery"]


def test_zero_errors_before_restart_is_refused(cfg, worker) -> None:
    settings = Settings.from_config(cfg)
    bad = Settings(settings.test, 1.0, 0, "radiusd", settings.state_path, settings.lock_path)
    with pytest.raises(ValueError, match="at least 1"):
        RadCheck(cfg, bad, restarter=Restarts(), notifier=worker)


def test_corrupt_state_file_is_reported_not_trusted(cfg, worker, caplog) -> None:
    path = cfg.path("Site", "State_Dir") / "radcheck.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{garbage")
    with caplog.at_level(logging.ERROR):
        check, script, _ = make(cfg, worker)
    assert "ignoring radcheck state" in caplog.text
    run(check, script, OK)
    assert state(cfg)["ok"] is True


def test_no_restart_during_start_up_grace_until_the_engine_answered(cfg, worker) -> None:
    clock = [1000.0]
    script, restarts = Script(), Restarts()
    check = RadCheck(cfg, Settings.from_config(cfg), probe=script, restarter=restarts,
                     notifier=worker, clock=lambda: clock[0], startup_grace=30)
    run(check, script, TIMEOUT, TIMEOUT, TIMEOUT, TIMEOUT)  # engine still starting
    assert restarts.calls == [] and state(cfg)["consecutive_failures"] == 4
    clock[0] += 31  # grace over: the engine had its chance
    run(check, script, TIMEOUT, TIMEOUT, TIMEOUT)
    assert restarts.calls == ["radiusd"]
    # once it has answered, the grace no longer applies
    clock[0] = 1000.0
    check2 = RadCheck(cfg, Settings.from_config(cfg), probe=script, restarter=restarts,
                      notifier=worker, clock=lambda: clock[0], startup_grace=30)
    run(check2, script, OK, TIMEOUT, TIMEOUT, TIMEOUT)
    assert restarts.calls == ["radiusd", "radiusd"]


def test_hung_smtp_does_not_hold_up_the_tests(tmp_path: Path) -> None:
    import socket

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # accepts, never greets
    try:
        sections = base_conf(tmp_path, radius_port=free_udp_port(),
                             smtp_port=hung.getsockname()[1],
                             extra={"Self Test": {"Errors_Before_Restart": 1},
                                    "Email": {"SMTP_Timeout_sec": 2}})
        cfg = config.load(write_conf(tmp_path / "vigil.conf", sections))
        worker = alerts.AlertWorker(cfg).start()
        check, script, restarts = make(cfg, worker)
        run(check, script, TIMEOUT, OK, TIMEOUT, OK)  # two outages, two recoveries queued
        assert len(restarts.calls) == 2 and state(cfg)["ok"] is True
        assert worker.pending() >= 3  # the mails wait on SMTP; the tests did not
        assert worker.close(timeout=0.2) >= 3
    finally:
        hung.close()
