"""The scheduler's passes with real plugin processes: misbehaving plugins never stall a pass."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.scheduler import SITE_HEARTBEAT_SERVICE, Scheduler
from monitor.spool import Spool
from monitor.testing import Spec
from monitor.transport import Outbox
from nsca.result import CheckResult
from vigil.processes import pid_alive
from vigil.testing.wait import wait_until

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins


class Recorder:
    def __init__(self) -> None:
        self.got: list[list[CheckResult]] = []

    def send(self, batch: Sequence[CheckResult]) -> None:
        self.got.append(list(batch))

    def describe(self) -> str:
        return "recorder"


def script(tmp: Path, name: str, body: str, python: bool = False) -> tuple[str, ...]:
    path = tmp / name
    shebang = f"#!{sys.executable}\n" if python else "#!/bin/sh\n"
    path.write_text(shebang + body)
    path.chmod(0o755)
    return (str(path),)


def bad_lot(tmp: Path) -> list[Spec]:
    return [
        Spec("fine", "Fine", script(tmp, "fine", "echo 'FINE OK: 1 | x=1'\n"), 60, 5),
        Spec("hang", "Hang", script(tmp, "hang", "sleep 300\n"), 60, 1),
        Spec("crash", "Crash", script(tmp, "crash", "import nonexistent_module_xyz\n", True),
             60, 5),
        Spec("mute", "Mute", script(tmp, "mute", "exit 0\n"), 60, 5),
        Spec("flood", "Flood", script(tmp, "flood", "import sys\nwhile True:\n"
                                      "    sys.stdout.write('y' * 65536)\n", True), 60, 10),
        Spec("ghost", "Ghost", (str(tmp / "no-such-plugin"), "-w", "10"), 60, 5),
        Spec("badrange", "Bad range", script(
            tmp, "badrange", "echo 'BADRANGE UNKNOWN: -w 10:5: start is above end'\nexit 3\n"),
            60, 5),
    ]


def test_a_pass_reports_every_check_whatever_it_does(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    sched = Scheduler(bad_lot(tmp_path), host_name="vigil-a1", site_name="site-a",
                      outbox=Outbox(rec, Spool(tmp_path / "spool")), parallelism=8,
                      max_output=1_000_000)
    try:
        report = sched.run_pass(60)
    finally:
        sched.close()
    got = {r.service: (r.status, r.output) for r in rec.got[0] if r.host == "vigil-a1"}
    assert got["Fine"] == (0, "FINE OK: 1 | x=1")
    assert got["Hang"] == (2, "CRITICAL - hang timed out after 1 s")
    assert got["Crash"][0] == 3 and "ModuleNotFoundError" in got["Crash"][1]
    assert got["Mute"] == (3, "UNKNOWN - mute printed nothing (exit code 0)")
    assert got["Flood"] == (3, "UNKNOWN - flood printed more than 1000000 bytes "
                               "(output cut, plugin stopped)")
    assert got["Ghost"] == (3, f"UNKNOWN - plugin not found: {tmp_path}/no-such-plugin")
    assert got["Bad range"] == (3, "BADRANGE UNKNOWN: -w 10:5: start is above end")
    assert "check ghost: plugin" in caplog.text
    # The host result and the site heartbeat come with every pass.
    host = [r for r in rec.got[0] if r.host == "vigil-a1" and r.service is None]
    assert len(host) == 1 and host[0].status == 0
    assert host[0].output.startswith("OK - vigil scheduler on vigil-a1: 7 checks in ")
    assert host[0].output.endswith("(1 OK, 0 WARNING, 1 CRITICAL, 5 UNKNOWN)")
    site = {(r.service, r.status) for r in rec.got[0] if r.host == "site-a"}
    assert site == {(None, 0), (SITE_HEARTBEAT_SERVICE, 0)}
    assert len(rec.got[0]) == 7 + 3
    assert report.delivery is not None and report.delivery.sent == 10
    assert all(r.timestamp is not None for r in rec.got[0])


def test_checks_run_in_parallel_up_to_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "log"
    body = (f'echo "start $(date +%s.%N)" >> {log}\nsleep 0.5\n'
            f'echo "end $(date +%s.%N)" >> {log}\necho "SLOW OK"\n')
    specs = [Spec(f"s{i}", f"S{i}", script(tmp_path, f"s{i}", body), 60, 10) for i in range(6)]
    sched = Scheduler(specs, host_name="h", site_name=None, outbox=None, parallelism=3)
    try:
        report = sched.run_pass(60)
    finally:
        sched.close()
    assert [o.status for _, o in report.outcomes] == [0] * 6
    events = sorted((float(t), kind) for kind, t in
                    (ln.split() for ln in log.read_text().splitlines()))
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 3


def test_due_follows_each_checks_interval() -> None:
    now = [1000.0]
    specs = [Spec("every", "E", ("true",), 60, 5), Spec("five", "F", ("true",), 300, 5)]
    sched = Scheduler(specs, host_name="h", site_name=None, outbox=None, clock=lambda: now[0])
    try:
        ran = []
        for _ in range(11):
            ran.append([s.name for s in sched.due(now[0], 60)])
            for s in sched.due(now[0], 60):
                sched._last_start[s.name] = now[0]
            now[0] += 60.4  # passes drift a little
        assert [("five" in r) for r in ran] == [True, False, False, False, False,
                                                True, False, False, False, False, True]
        assert all("every" in r for r in ran)
    finally:
        sched.close()


def test_stop_kills_running_plugins_and_sends_nothing_half_done(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    specs = [Spec("hang", "Hang", script(tmp_path, "hang", f"echo $$ > {pidfile}\nsleep 300\n"),
                  60, 300)]
    rec = Recorder()
    sched = Scheduler(specs, host_name="h", site_name=None,
                      outbox=Outbox(rec, Spool(tmp_path / "spool")))
    t = threading.Thread(target=sched.run_forever, args=(60.0,))
    t.start()
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10,
                         what="the plugin wrote its pid"))
    sched.stop()
    t.join(10)
    assert not t.is_alive()
    sched.close()
    assert rec.got == []
    wait_until(lambda: not pid_alive(pid), 2, what="the running plugin was killed")


def test_reload_keeps_the_old_checks_when_the_new_ones_are_bad(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    one = Spec("one", "One", script(tmp_path, "one", "echo 'ONE OK'\n"), 60, 5)
    two = Spec("two", "Two", script(tmp_path, "two", "echo 'TWO OK'\n"), 60, 5)
    sched = Scheduler([one], host_name="h", site_name=None, outbox=None)
    try:
        def broken() -> list[Spec]:
            raise ValueError("checks.conf line 3: unknown plugin 'dsik'")

        sched.request_reload(broken)
        sched._apply_reload()
        assert sched.checks == [one]
        assert "checks not reloaded" in caplog.text and "dsik" in caplog.text
        sched.request_reload(lambda: [one, two])
        sched._apply_reload()
        assert [c.name for c in sched.checks] == ["one", "two"]
    finally:
        sched.close()


def test_a_name_nsca_cannot_carry_is_logged_once_and_the_rest_sent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ok = script(tmp_path, "ok", "echo 'OK'\n")
    specs = [Spec("fine", "Fine", ok, 60, 5), Spec("long", "L" * 128, ok, 60, 5)]
    rec = Recorder()
    sched = Scheduler(specs, host_name="h", site_name=None,
                      outbox=Outbox(rec, Spool(tmp_path / "spool")))
    try:
        sched.run_pass(everything=True)
        sched.run_pass(everything=True)
    finally:
        sched.close()
    assert [[r.service for r in batch] for batch in rec.got] == [["Fine", None]] * 2
    assert caplog.text.count("cannot travel over NSCA") == 1


def test_a_check_with_a_long_timeout_does_not_hold_up_the_others(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    slow = script(tmp_path, "slow", f"while [ ! -e {gate} ]; do sleep 0.05; done\n"
                                    "echo 'SLOW OK: done'\n")
    fast = script(tmp_path, "fast", "echo 'FAST OK'\n")
    specs = [Spec("slow", "Slow", slow, 1, 120), Spec("fast", "Fast", fast, 1, 5)]
    rec = Recorder()
    sched = Scheduler(specs, host_name="h", site_name=None,
                      outbox=Outbox(rec, Spool(tmp_path / "spool")))
    try:
        first = sched.run_pass(3.0)
        assert [s.name for s, _ in first.outcomes] == ["fast"]
        assert first.still_running == ["slow"]
        host = [r for r in rec.got[0] if r.service is None][0]
        assert host.output.endswith("; still running: slow")
        time.sleep(0.8)  # the clock is under test: slow's interval passes, it is due again
        second = sched.run_pass(3.0)  # slow is due again, but not started twice
        assert [s.name for s, _ in second.outcomes] == ["fast"]
        gate.touch()
        deadline = time.monotonic() + 10
        while True:
            time.sleep(0.8)  # the clock is under test: the next pass comes when due
            report = sched.run_pass(3.0)
            if any(s.name == "slow" for s, _ in report.outcomes) or time.monotonic() > deadline:
                break
        assert [(s.name, o.output) for s, o in report.outcomes] == [("slow", "SLOW OK: done"),
                                                                   ("fast", "FAST OK")]
    finally:
        gate.touch()  # a failed assertion must not leave close() waiting 120 s
        sched.close()
    sent = [r.service for batch in rec.got for r in batch]
    assert sent.count("Slow") == 1 and sent.count("Fast") == len(rec.got)
