"""The plugin base: ranges, perfdata, the one-line output, exit codes, -t, crashes."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checks import PLUGINS
from checks.cli import main as cli_main
from checks.cli import plugin_class
from checks.perfdata import Perfdata
from checks.plugin import MAX_LINE, UNKNOWN, format_line, parse_arguments, run
from checks.range import ThresholdError, parse_range
from tests.checks.checks_fixtures import run_check

# The guideline's own table: the value alerts when ...
RANGE_TABLE = [
    ("10", [-1, 11, 100], [0, 5, 10]),             # < 0 or > 10
    ("10:", [-5, 9.99], [10, 11, 1e9]),             # < 10
    ("~:10", [10.01, 11], [-1e9, 0, 10]),           # > 10
    ("10:20", [9, 21], [10, 15, 20]),               # < 10 or > 20
    ("@10:20", [10, 15, 20], [9, 21]),              # >= 10 and <= 20
    ("0.5", [0.51, -0.1], [0, 0.5]),
    ("-5:5", [-6, 6], [-5, 0, 5]),
    ("1e3", [1001], [999]),
]


@pytest.mark.parametrize(("spec", "alerting", "quiet"), RANGE_TABLE)
def test_range_table(spec: str, alerting: list[float], quiet: list[float]) -> None:
    r = parse_range(spec)
    for v in alerting:
        assert r.alerts(v), f"{spec}: {v} should alert"
    for v in quiet:
        assert not r.alerts(v), f"{spec}: {v} should not alert"


@pytest.mark.parametrize("bad", ["abc", "10:5", "1:2:3", "~", "@", ":", "nan", "inf", "5%",
                                 "~10"])
def test_bad_ranges_say_what_is_wrong(bad: str) -> None:
    with pytest.raises(ThresholdError, match="bad threshold"):
        parse_range(bad)


def test_empty_range_never_alerts() -> None:
    r = parse_range("")
    assert not r.alerts(-1e12) and not r.alerts(1e12)


def test_perfdata_format() -> None:
    p = Perfdata("rtt", 0.0123, "s", parse_range("1"), parse_range("3"), 0)
    assert str(p) == "'rtt'=0.0123s;1;3;0"
    assert str(Perfdata("x", 3, "%", None, parse_range("@10:20"), 0, 100)) == \
        "'x'=3%;;@10:20;0;100"
    # labels never carry quotes, equals signs or blanks
    assert str(Perfdata("it's = odd", 1)) == "'it_s_odd'=1"
    with pytest.raises(ValueError, match="unit"):
        Perfdata("x", 1, "furlongs")


def test_format_line_is_one_bounded_line() -> None:
    line = format_line("X", 2, "a|b\nc\r\td" + "z" * 10_000,
                       [f"'p{i}'=1" for i in range(500)])
    assert "\n" not in line and len(line.encode()) <= MAX_LINE
    assert line.startswith("X CRITICAL: a/b c d")
    text, _, perf = line.partition(" | ")
    assert perf.split(" ")[-1].startswith("'p")  # whole perfdata items only


@pytest.mark.parametrize("name", PLUGINS)
def test_every_plugin_help_and_version_exit_3(name: str, capsys: pytest.CaptureFixture[str]
                                              ) -> None:
    plugin = plugin_class(name)()
    assert run(plugin, ["--help"]) == UNKNOWN
    out = capsys.readouterr().out
    assert f"vigil-check {name}" in out and "-w RANGE" in out and "-t SEC" in out
    assert run(plugin, ["-V"]) == UNKNOWN


@pytest.mark.parametrize("name", PLUGINS)
def test_every_plugin_bad_threshold_exits_3(name: str) -> None:
    plugin = plugin_class(name)()
    for argv in (["-w", "10:5"], ["-c", "abc"], ["--nonsense"], ["-t", "-1"]):
        out = io.StringIO()
        assert run(plugin, argv, out=out) == UNKNOWN
        line = out.getvalue()
        assert line.count("\n") == 1 and line.startswith(f"{name.upper()} UNKNOWN: ")
        assert "usage: vigil-check" in line


@pytest.mark.parametrize("name", PLUGINS)
def test_every_plugin_takes_the_guideline_ranges(name: str) -> None:
    plugin = plugin_class(name)()
    required = {"pidfile": ["-f", "x"],
                "open_fds": ["--pid", "1"]}.get(name, [])
    for spec in ("10", "10:", "~:10", "10:20", "@10:20"):
        args = parse_arguments(plugin, ["-w", spec, "-c", spec, *required])
        assert str(args.warning) == spec and str(args.critical) == spec


@pytest.mark.integration
def test_as_real_subprocesses_help_and_bad_threshold() -> None:
    assert run_check("load", "--help").rc == 3
    assert run_check("load", "-V").rc == 3
    r = run_check("disk", "-w", "90:80")
    assert r.rc == 3 and r.line.startswith("DISK UNKNOWN: argument -w/--warning: bad threshold "
                                           "'90:80'")
    r = subprocess.run([sys.executable, "-m", "checks.memory", "-c", "x"], capture_output=True,
                       text=True)
    assert r.returncode == 3 and "bad threshold 'x'" in r.stdout


def test_negative_ranges_can_follow_w() -> None:
    args = parse_arguments(plugin_class("load")(), ["-w", "-5:5", "-c", "~:3"])
    assert str(args.warning) == "-5:5"


def test_cli_list_and_unknown_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PLUGINS)
    assert cli_main(["no_such_plugin"]) == 3
    assert "no plugin named 'no_such_plugin'" in capsys.readouterr().out
    assert cli_main([]) == 3


def test_every_plugin_is_a_runnable_module() -> None:
    for name in PLUGINS:
        src = Path(__file__).parents[2] / "checks" / f"{name}.py"
        text = src.read_text()
        assert "PLUGIN = " in text and 'if __name__ == "__main__":' in text, name


# ------------------------------------------- misbehaving plugins, as subprocesses

def _run_inline(tmp_path: Path, body: str, *args: str, timeout: float = 30
                ) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "plugin.py"
    script.write_text(textwrap.dedent("""\
        import signal, sys, time
        from checks.plugin import Plugin, Reading, TargetDown

        class P(Plugin):
            name = "test_plugin"
            title = "test"
            label = "v"
            remote = REMOTE

            def probe(self, ctx):
        """).replace("REMOTE", "True" if "remote" in args else "False")
        + textwrap.indent(textwrap.dedent(body), " " * 8)
        + "\nsys.exit(P.main([a for a in sys.argv[1:] if a != 'remote']))\n")
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.integration
def test_target_hang_is_critical_timeout(tmp_path: Path) -> None:
    p = _run_inline(tmp_path, "time.sleep(60)", "-t", "1", "remote")
    assert p.returncode == 2, p
    assert p.stdout == "TEST_PLUGIN CRITICAL: timeout after 1s: no answer from the target\n"


@pytest.mark.integration
def test_own_hang_is_unknown(tmp_path: Path) -> None:
    p = _run_inline(tmp_path, "time.sleep(60)", "-t", "1")
    assert p.returncode == 3 and p.stdout == "TEST_PLUGIN UNKNOWN: plugin timed out after 1s\n"


@pytest.mark.integration
def test_hang_that_ignores_the_alarm_is_stopped_hard(tmp_path: Path) -> None:
    # SIGALRM blocked: the handler never runs, the backstop thread ends the process
    body = """\
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(60)
    """
    p = _run_inline(tmp_path, body, "-t", "1", "remote")
    assert p.returncode == 2, p
    assert p.stdout == ("TEST_PLUGIN CRITICAL: timeout after 1s: no answer from the target "
                        "(hard stop)\n")


@pytest.mark.integration
def test_crash_is_unknown_without_traceback(tmp_path: Path) -> None:
    p = _run_inline(tmp_path, "return {}['boom']")
    assert p.returncode == 3
    assert p.stdout == "TEST_PLUGIN UNKNOWN: plugin error: KeyError: 'boom'\n"
    assert "Traceback" not in p.stdout


@pytest.mark.integration
def test_target_down_is_critical_and_huge_text_is_capped(tmp_path: Path) -> None:
    p = _run_inline(tmp_path, "raise TargetDown('x' * 10_000_000)")
    assert p.returncode == 2 and p.stdout.count("\n") == 1
    assert len(p.stdout.encode()) <= MAX_LINE + 1


@pytest.mark.integration
def test_multiline_text_stays_one_line(tmp_path: Path) -> None:
    p = _run_inline(tmp_path, "return Reading(5, 'first\\nsecond | third')", "-w", "4")
    assert p.returncode == 1
    assert p.stdout == ("TEST_PLUGIN WARNING: first second / third (warning above 4) | "
                        "'v'=5;4\n")


def test_run_in_a_worker_thread_works_without_signals() -> None:
    import threading

    out = io.StringIO()
    codes: list[int] = []
    t = threading.Thread(target=lambda: codes.append(
        run(plugin_class("load")(), ["-w", "@0:1000000"], out=out)))
    t.start()
    t.join(30)
    assert codes == [1] and out.getvalue().startswith("LOAD WARNING")
