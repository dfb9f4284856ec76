"""Path_To_Lock_File: one radcheck at a time, stale locks taken over, bad folders."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.radcheck.radcheck_peers import VIGIL, base_conf, write_conf
from vigil.pidlock import LockError, LockHeld, PidLock
from vigil.testing.ports import free_udp_port
from vigil.testing.wait import wait_until

HOLD = """
import sys, time
from vigil.pidlock import PidLock
lock = PidLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def dead_pid() -> int:
    # Above the kernel's pid_max: certainly not running (a real dead child's pid
    # can be reused at once on a busy machine).
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1


def test_acquire_writes_pid_and_release_removes(tmp_path: Path) -> None:
    path = tmp_path / "radcheck.pid"
    with PidLock(path):
        assert path.read_text().strip() == str(os.getpid())
    assert not path.exists()


@pytest.mark.integration
def test_live_holder_keeps_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "radcheck.pid"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        with pytest.raises(LockHeld) as err:
            PidLock(path).acquire()
        assert err.value.pid == holder.pid
        assert f"pid {holder.pid}" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    # killed holder: the kernel dropped its flock, the file names a dead pid
    lock = PidLock(path).acquire()
    assert lock.took_over_from == holder.pid
    lock.release()


def test_stale_lock_file_is_taken_over_and_logged(tmp_path: Path, caplog) -> None:
    path = tmp_path / "radcheck.pid"
    old = dead_pid()
    path.write_text(f"{old}\n")
    with caplog.at_level(logging.WARNING, logger="vigil.pidlock"), PidLock(path) as lock:
        assert lock.took_over_from == old
        assert path.read_text().strip() == str(os.getpid())
    assert f"stale lock file {path} left by pid {old}" in caplog.text


def test_reused_pid_without_flock_is_stale_too(tmp_path: Path, caplog) -> None:
    path = tmp_path / "radcheck.pid"
    path.write_text("1\n")  # init runs, but does not hold our flock
    with caplog.at_level(logging.WARNING), PidLock(path) as lock:
        assert lock.took_over_from == 1
    assert "pid reused" in caplog.text


def test_missing_folder_is_created_and_logged(tmp_path: Path, caplog) -> None:
    path = tmp_path / "no" / "such" / "dir" / "radcheck.pid"
    with caplog.at_level(logging.WARNING), PidLock(path):
        assert path.exists()
    assert "was missing; created it" in caplog.text


def test_folder_that_cannot_exist_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LockError, match="cannot be created: Not a directory"):
        PidLock(tmp_path / "file" / "sub" / "radcheck.pid").acquire()


# ------------------------------------------------------------ through `vigil`

def _conf(tmp_path: Path, **self_test: object) -> Path:
    sections = base_conf(tmp_path, radius_port=free_udp_port(), smtp_port=free_udp_port(),
                         extra={"Self Test": dict(self_test)})
    return write_conf(tmp_path / "vigil.conf", sections)


def _vigil(conf: Path, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, "-c", str(conf), *args], capture_output=True, text=True,
                          timeout=30, **kw)


@pytest.mark.integration
def test_errors_before_restart_zero_is_refused_with_exit_2(tmp_path: Path) -> None:
    conf = _conf(tmp_path, Errors_Before_Restart=0)
    r = _vigil(conf, "radcheck")
    assert r.returncode == 2
    assert f"Error: {conf} [Self Test] Errors_Before_Restart: 0 is below the minimum 1" \
        in r.stderr


@pytest.mark.integration
def test_uncreatable_lock_folder_exits_2_naming_the_option(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    conf = _conf(tmp_path, Path_To_Lock_File=tmp_path / "file" / "radcheck.pid")
    r = _vigil(conf, "radcheck")
    assert r.returncode == 2
    assert "[Self Test] Path_To_Lock_File: lock folder" in r.stderr
    assert "exists but is not a folder" in r.stderr


def _start_radcheck(conf: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([VIGIL, "-c", str(conf), "radcheck"], stdout=fh, stderr=fh)


@pytest.mark.integration
def test_second_radcheck_refuses_then_killed_radchecks_lock_is_taken_over(
        tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    lock = tmp_path / "run" / "radcheck.pid"
    log = tmp_path / "radcheck.log"
    first = _start_radcheck(conf, log)
    try:
        wait_until(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), 15)
        second = _vigil(conf, "radcheck")
        assert second.returncode == 1
        assert f"another radcheck is running (pid {first.pid} holds {lock})" in second.stderr
    finally:
        first.kill()  # SIGKILL: no clean-up, the lock file stays behind
        first.wait()
    assert lock.read_text().strip() == str(first.pid)
    third = _start_radcheck(conf, log)
    try:
        wait_until(lambda: lock.read_text().strip() == str(third.pid), 15)
        third.send_signal(signal.SIGTERM)
        assert third.wait(20) == 0
    finally:
        if third.poll() is None:
            third.kill()
            third.wait()
    text = log.read_text()
    # (or, if the kernel already gave the pid to another process: "pid reused")
    assert f"stale lock file {lock} left by pid {first.pid}" in text or \
        f"lock file {lock} names pid {first.pid}, which runs but does not hold" in text
    assert "radcheck stopped" in text
    assert not lock.exists()


@pytest.mark.integration
def test_sighup_rereads_the_configuration(tmp_path: Path) -> None:
    import json

    from tests.radcheck.radcheck_peers import FreeRadius

    fr = FreeRadius(tmp_path / "raddb").start()
    try:
        sections = base_conf(tmp_path, radius_port=fr.port, smtp_port=free_udp_port(),
                             extra={"Self Test": {"Password": "wrong",
                                                  "Errors_Before_Restart": 100}})
        conf = write_conf(tmp_path / "vigil.conf", sections)
        state = tmp_path / "state" / "radcheck.json"
        log = tmp_path / "radcheck.log"
        proc = _start_radcheck(conf, log)

        def kind() -> str | None:
            try:
                return json.loads(state.read_text()).get("kind")
            except (FileNotFoundError, ValueError):
                return None

        try:
            wait_until(lambda: kind() == "reject", 15)
            conf.write_text(conf.read_text().replace("[Radius]", "[Radius]\nAuth_Port=0"))
            proc.send_signal(signal.SIGHUP)  # a bad file: kept the old configuration
            wait_until(lambda: "configuration not reloaded" in log.read_text(), 15)
            sections["Self Test"]["Password"] = "cisco"
            write_conf(conf, sections)
            proc.send_signal(signal.SIGHUP)
            wait_until(lambda: kind() == "accept", 15)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        fr.stop()
    text = log.read_text()
    assert "SIGHUP: configuration not reloaded, keeping the old one" in text
    assert "SIGHUP: configuration reloaded" in text
    assert "cisco" not in text and "wrong" not in text.replace("wrong shared secret", "")
