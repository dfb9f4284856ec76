"""The plugin worker (zygote): Vigil's plugins forked from one pre-imported Python,
with the runner's hard timeout and isolation kept (real plugins, real processes)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.runner import Outcome, ProcessTracker, run_plugin
from monitor.zygote import Zygote, plugin_argv
from vigil.service_state import ServiceState
from vigil.testing.wait import poll, wait_until

pytestmark = pytest.mark.integration  # the plugin worker: real forked processes

# a check that passes anywhere: a real plugin, quick, OK whatever the disk holds
DISK_OK = ["vigil-check", "disk", "-p", "/", "-w", "100", "-c", "100"]


@pytest.fixture
def zygote() -> Iterator[Zygote]:
    with contextlib.closing(Zygote()) as z:
        yield z


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A UDP port that takes packets and never answers (an NTP server that hangs)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def test_plugin_argv_picks_vigil_plugins_only() -> None:
    assert plugin_argv(["/venv/bin/vigil-check", "load", "-w", "5"]) == ["load", "-w", "5"]
    assert plugin_argv(["/usr/lib/nagios/plugins/check_vigil_disk", "-p", "/"]) == \
        ["disk", "-p", "/"]
    assert plugin_argv(["/usr/lib/nagios/plugins/check_load"]) is None
    assert plugin_argv(["vigil-check", "--list"]) is None


def test_same_line_and_code_as_a_subprocess(zygote: Zygote) -> None:
    forked = run_plugin(DISK_OK, 10, zygote=zygote)
    started = run_plugin(DISK_OK, 10)
    assert forked.status == started.status == ServiceState.OK
    assert forked.output.split(":")[0] == started.output.split(":")[0] == "DISK OK"
    bad = run_plugin(["vigil-check", "disk", "-w", "x:y"], 10, zygote=zygote)
    assert bad.status == ServiceState.UNKNOWN and bad.output.startswith("DISK UNKNOWN:")
    assert zygote.starts == 1


def test_hung_plugin_is_killed_at_the_hard_timeout(zygote: Zygote, silent_udp: int) -> None:
    # The plugin's own -t (30 s) is far past the runner's hard limit (1.5 s).
    argv = ["vigil-check", "clock_offset", "-H", "127.0.0.1", "-p", str(silent_udp), "-t", "30"]
    o = run_plugin(argv, 1.5, zygote=zygote, name="clock_offset")
    assert o.status == ServiceState.CRITICAL
    assert "timed out after 1.5 s" in o.output
    assert o.duration < 10  # bounded: the kill did happen (no figure asserted)
    # the worker survived and serves the next check
    assert run_plugin(["vigil-check", "load"], 10, zygote=zygote).status in tuple(ServiceState)
    assert zygote.starts == 1


class HungCheck:
    """A check stuck on a silent port, run by the worker in a thread of its own."""

    def __init__(self, zygote: Zygote, silent_udp: int) -> None:
        argv = ["vigil-check", "clock_offset", "-H", "127.0.0.1", "-p", str(silent_udp),
                "-t", "20"]
        self.tracker = ProcessTracker()
        self._outcome: list[Outcome] = []
        self._thread = threading.Thread(target=lambda: self._outcome.append(
            run_plugin(argv, 25, zygote=zygote, tracker=self.tracker)))
        self._thread.start()
        # the pid of its child, once the runner has it: then the scheduler knows it
        self.pid = wait_until(lambda: sorted(self.tracker.running()), 20,
                              what="the check started")[0]

    def outcome(self) -> Outcome:
        self._thread.join(30)
        assert self._outcome, "the check never ended"
        return self._outcome[0]


def test_a_crashing_child_hurts_no_other_check(zygote: Zygote, silent_udp: int) -> None:
    check = HungCheck(zygote, silent_udp)
    os.kill(check.pid, signal.SIGSEGV)
    crashed = check.outcome()
    assert crashed.status == ServiceState.UNKNOWN
    assert "killed by SIGSEGV" in crashed.output
    assert run_plugin(DISK_OK, 10, zygote=zygote).status == ServiceState.OK


def test_a_dead_worker_fails_its_checks_and_is_replaced(zygote: Zygote, silent_udp: int) -> None:
    check = HungCheck(zygote, silent_udp)  # running: the worker's death is news to it
    assert zygote.pid is not None
    os.kill(zygote.pid, signal.SIGKILL)
    lost = check.outcome()
    assert lost.status == ServiceState.UNKNOWN
    assert "worker died" in lost.output
    assert run_plugin(DISK_OK, 10, zygote=zygote).status == ServiceState.OK
    assert zygote.starts == 2


def test_each_check_gets_the_environment_it_was_given(tmp_path: Path) -> None:
    log_file = tmp_path / "billing.log"
    log_file.write_text("x\n")
    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[Site]\nState_Dir={tmp_path}\n[Log]\nLog_Dest={log_file}\n")
    base = {k: v for k, v in os.environ.items() if k != "VIGIL_CONF"}
    with contextlib.closing(Zygote(env=base)) as z:
        plain = run_plugin(["vigil-check", "file_age"], 10, zygote=z, env=base)
        assert str(log_file) not in plain.output
        given = run_plugin(["vigil-check", "file_age"], 10, zygote=z,
                           env={**base, "VIGIL_CONF": str(conf)})
        assert given.status == ServiceState.OK and str(log_file) in given.output


def test_an_edited_config_is_read_at_the_next_check(tmp_path: Path) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second-log.log"
    for f in (first, second):
        f.write_text("x\n")
    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[Site]\nState_Dir={tmp_path}\n[Log]\nLog_Dest={first}\n")
    env = {**os.environ, "VIGIL_CONF": str(conf)}
    with contextlib.closing(Zygote(env=env)) as z:
        assert str(first) in run_plugin(["vigil-check", "file_age"], 10, zygote=z,
                                        env=env).output
        conf.write_text(f"[Site]\nState_Dir={tmp_path}\n[Log]\nLog_Dest={second}\n")
        assert str(second) in run_plugin(["vigil-check", "file_age"], 10, zygote=z,
                                         env=env).output


def test_the_worker_ends_when_the_scheduler_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "sched.py"
    script.write_text(
        "import sys, time\n"
        "from monitor.runner import ProcessTracker, run_plugin\nfrom monitor.zygote import Zygote\n"
        "z = Zygote()\nrun_plugin(['vigil-check', 'load'], 10, zygote=z)\n"
        "print(z.pid, flush=True)\ntime.sleep(300)\n")
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}) as sched:
        assert sched.stdout is not None
        zygote_pid = int(sched.stdout.readline())
        sched.kill()  # kill -9: no close(), the worker only sees its socket close
        sched.wait()
    assert poll(lambda: not _running(zygote_pid), 20)


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its (dead) parent's reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_start_waits_until_the_plugins_are_imported(zygote: Zygote) -> None:
    assert zygote.start(timeout=60) is True
    # the first check pays no import: it is forked from the ready worker
    o = run_plugin(DISK_OK, 10, zygote=zygote)
    assert o.status == ServiceState.OK and o.cpu_sec is not None
    assert zygote.starts == 1
