"""The plugin runner against small real plugins: every way a plugin can misbehave."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.runner import ProcessTracker, clean_line, judge, run_plugin
from vigil.processes import pid_alive
from vigil.service_state import ServiceState, worst
from vigil.testing.wait import wait_until

OK, WARNING, CRITICAL, UNKNOWN = ServiceState

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins


def plugin(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def pyplugin(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("rc,state", [(0, OK), (1, WARNING), (2, CRITICAL), (3, UNKNOWN)])
def test_exit_code_is_the_status(tmp_path: Path, rc: int, state: int) -> None:
    p = plugin(tmp_path, "p", f"echo 'DISK X: 12% used | used=12%;80;90'\nexit {rc}\n")
    o = run_plugin([p], 5)
    assert o.status == state
    assert o.output == "DISK X: 12% used | used=12%;80;90"


def test_only_the_first_line_is_kept(tmp_path: Path) -> None:
    p = plugin(tmp_path, "p", "echo 'LOAD OK: 0.1'\necho 'long output'\necho more\n")
    assert run_plugin([p], 5).output == "LOAD OK: 0.1"


def test_arguments_reach_the_plugin(tmp_path: Path) -> None:
    p = plugin(tmp_path, "p", 'echo "ARGS OK: $1 $2"\n')
    assert run_plugin([p, "-w", "10:"], 5).output == "ARGS OK: -w 10:"


def test_hang_is_critical_timeout_and_the_group_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    p = plugin(tmp_path, "hang", f"""\
        sleep 300 &
        echo $! > {pidfile}
        sleep 300
        """)
    o = run_plugin([p], 1.0, name="hang")
    assert o.status == CRITICAL
    assert o.output == "CRITICAL - hang timed out after 1 s"
    child = int(pidfile.read_text())
    wait_until(lambda: not pid_alive(child), 5, what="the plugin's own child ended with it")


def test_plugin_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    p = pyplugin(tmp_path, "stubborn", """\
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("started", flush=True)
        time.sleep(300)
        """)
    o = run_plugin([p], 1.0, name="stubborn")
    assert o.status == CRITICAL and "timed out after 1 s" in o.output


def test_closing_stdout_and_staying_is_a_timeout(tmp_path: Path) -> None:
    p = plugin(tmp_path, "closer", "echo 'OK so far'\nexec >&- 2>&-\nsleep 300\n")
    o = run_plugin([p], 1.0, name="closer")
    assert o.status == CRITICAL and "timed out" in o.output


def test_crash_is_unknown_with_the_reason(tmp_path: Path) -> None:
    p = pyplugin(tmp_path, "crash", "raise RuntimeError('database exploded')\n")
    o = run_plugin([p], 5, name="crash")
    assert o.status == UNKNOWN
    assert "crash printed nothing (exit code 1)" in o.output
    assert "RuntimeError: database exploded" in o.output


def test_nothing_printed_is_unknown(tmp_path: Path) -> None:
    p = plugin(tmp_path, "mute", "exit 0\n")
    o = run_plugin([p], 5, name="mute")
    assert (o.status, o.output) == (UNKNOWN, "UNKNOWN - mute printed nothing (exit code 0)")


def test_exit_code_outside_nagios_range_is_unknown(tmp_path: Path) -> None:
    p = plugin(tmp_path, "odd", "echo 'whatever'\necho 'bad thing' >&2\nexit 7\n")
    o = run_plugin([p], 5, name="odd")
    assert (o.status, o.output) == (UNKNOWN, "UNKNOWN - odd exited with code 7: bad thing")


def test_killed_by_signal_is_unknown(tmp_path: Path) -> None:
    p = plugin(tmp_path, "segv", "kill -SEGV $$\n")
    o = run_plugin([p], 5, name="segv")
    assert (o.status, o.output) == (UNKNOWN, "UNKNOWN - segv killed by SIGSEGV")


def test_garbage_is_unknown(tmp_path: Path) -> None:
    p = pyplugin(tmp_path, "garbage", """\
        import sys
        sys.stdout.buffer.write(bytes(range(128, 256)) * 4)
        """)
    o = run_plugin([p], 5, name="garbage")
    assert (o.status, o.output) == (UNKNOWN, "UNKNOWN - garbage printed garbage (not UTF-8 text)")


def test_control_characters_are_garbage(tmp_path: Path) -> None:
    p = pyplugin(tmp_path, "ctl", "import sys\nsys.stdout.write('\\x01\\x02\\x03\\x04' * 50)\n")
    o = run_plugin([p], 5, name="ctl")
    assert o.status == UNKNOWN and "control characters" in o.output


def test_ten_megabytes_is_unknown_capped_and_stopped(tmp_path: Path) -> None:
    p = pyplugin(tmp_path, "flood", """\
        import sys, time
        chunk = b"x" * 65536
        for _ in range(160):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        time.sleep(300)
        """)
    o = run_plugin([p], 30, max_output=65536, name="flood")
    assert o.status == UNKNOWN
    assert o.output == ("UNKNOWN - flood printed more than 65536 bytes "
                        "(output cut, plugin stopped)")


def test_long_single_line_is_cut_for_nsca(tmp_path: Path) -> None:
    p = pyplugin(tmp_path, "long", "print('LONG OK: ' + 'é' * 5000)\n")
    o = run_plugin([p], 5, max_output=1_000_000)
    assert o.status == OK
    assert len(o.output.encode()) <= 2048 and o.output.endswith("...")


def test_missing_plugin_is_unknown_and_logged(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    o = run_plugin([str(tmp_path / "no-such-plugin"), "-w", "1"], 5, name="ghost")
    assert o.status == UNKNOWN
    assert o.output == f"UNKNOWN - plugin not found: {tmp_path}/no-such-plugin"
    assert "check ghost: plugin" in caplog.text and "not found" in caplog.text
    o = run_plugin(["vigil-no-such-program"], 5)
    assert (o.status, o.output) == (UNKNOWN, "UNKNOWN - plugin not found: vigil-no-such-program")


def test_not_executable_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.write_text("echo hi\n")
    o = run_plugin([str(path)], 5)
    assert o.status == UNKNOWN and "plugin not found" in o.output


def test_empty_command_is_unknown() -> None:
    assert run_plugin([], 5).status == UNKNOWN


def test_programs_in_this_pythons_bin_are_found() -> None:
    # vigil-check lives next to the interpreter; supervisor's PATH may not say so.
    o = run_plugin(["vigil-check", "no_such_check"], 10)
    assert o.status == UNKNOWN
    assert "no plugin named 'no_such_check'" in o.output


def test_tracker_kills_running_plugins(tmp_path: Path) -> None:
    import threading

    p = plugin(tmp_path, "slow", "sleep 300\n")
    tracker = ProcessTracker()
    box: list = []
    t = threading.Thread(target=lambda: box.append(run_plugin([p], 60, tracker=tracker)))
    t.start()
    wait_until(lambda: tracker._pids, 5, what="the tracker saw the plugin start")
    assert tracker.kill_all() == 1
    t.join(10)
    assert not t.is_alive()
    assert box[0].status == UNKNOWN and "SIGKILL" in box[0].output


@pytest.mark.parametrize("rc,out,err,expected", [
    (0, b"OK - fine\n", b"", (OK, "OK - fine")),
    (2, b"\n\nCRIT - x | a=1\nmore\n", b"", (CRITICAL, "CRIT - x | a=1")),
    (3, b"", b"Traceback\nValueError: bad -w\n",
     (UNKNOWN, "UNKNOWN - p printed nothing (exit code 3): ValueError: bad -w")),
    (255, b"", b"", (UNKNOWN, "UNKNOWN - p exited with code 255")),
    (-signal.SIGKILL, b"", b"", (UNKNOWN, "UNKNOWN - p killed by SIGKILL")),
    (0, b"\xff\xfe", b"", (UNKNOWN, "UNKNOWN - p printed garbage (not UTF-8 text)")),
])
def test_judge_table(rc: int, out: bytes, err: bytes, expected: tuple[int, str]) -> None:
    assert judge("p", rc, out, err) == expected


def test_clean_line_strips_tabs_and_nuls() -> None:
    assert clean_line(" a\tb\0c\r ") == "a b c"


def test_service_state_code_text_and_worst() -> None:
    assert [(s.code, s.text) for s in ServiceState] == [
        (0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN")]
    # Nagios' order: a target known down outranks a plugin that could not look
    assert worst(OK, UNKNOWN, WARNING) is UNKNOWN
    assert worst(UNKNOWN, CRITICAL) is CRITICAL
    assert worst() is OK
    with pytest.raises(ValueError):
        ServiceState.from_code(4)
