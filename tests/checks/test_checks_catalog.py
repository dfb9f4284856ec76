"""The checks file loader: the shipped etc/checks.conf, and every kind of mistake."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from checks import PLUGINS
from checks.catalog import CatalogError, load_checks, parse_checks

ROOT = Path(__file__).parents[2]


def test_shipped_checks_file_loads() -> None:
    specs = load_checks(ROOT / "etc" / "checks.conf")
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) and len(specs) >= 25
    plugins = {s.plugin for s in specs}
    assert plugins >= set(PLUGINS) - {"pidfile", "file_age", "open_fds"}
    for s in specs:
        assert s.interval_sec == 60 and s.timeout_sec == 10
        assert Path(s.command[0]).name == "vigil-check" and s.command[1] == s.plugin
        assert s.command[-2:] == ("-t", "9")
        assert s.subsystem in ("radius", "billing", "database", "replication", "nsca",
                               "system", "monitor", "redundancy")
    central = {s.name for s in load_checks(ROOT / "etc" / "checks.conf", role="central")}
    assert "nsca_spool" in central and "radius_auth" not in central and "disk" in central
    secondary = {s.name for s in load_checks(ROOT / "etc" / "checks.conf", role="secondary")}
    assert "replication" in secondary and "nsca_spool" not in secondary


def test_every_check_has_its_runbook_anchor() -> None:
    doc = (ROOT / "docs" / "checks.md").read_text()
    anchors = set(re.findall(r'<a id="(check-[a-z0-9_]+)"></a>', doc))
    for s in load_checks(ROOT / "etc" / "checks.conf"):
        assert f"check-{s.name}" in anchors, s.name
    for name in PLUGINS:
        assert f"check-{name}" in anchors, name


@pytest.mark.integration
def test_commands_run_as_is() -> None:
    import subprocess

    (spec,) = parse_checks("[disk]\nservice = Disk\nsubsystem = system\nargs = -p / -c 100\n")
    p = subprocess.run(spec.command, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("DISK OK")


def _err(text: str) -> str:
    with pytest.raises(CatalogError) as info:
        parse_checks(textwrap.dedent(text), "checks.conf")
    return str(info.value)


def test_unknown_plugin_names_the_line() -> None:
    msg = _err("""\
        [disk]
        service = Disk
        subsystem = system

        [frobnicate]
        service = Frob
        subsystem = system
        """)
    assert msg.startswith("checks.conf:5: [frobnicate] plugin: plugin 'frobnicate' does not "
                          "exist")


def test_bad_threshold_names_the_line() -> None:
    msg = _err("""\
        [load]
        service = Load
        subsystem = system
        args = -w 10:5
        """)
    assert msg.startswith("checks.conf:4: [load] args: args for load: argument -w/--warning: "
                          "bad threshold '10:5'"), msg


@pytest.mark.parametrize(("body", "expect"), [
    ("service = X\nsubsystem = nope\n", "4: [c] subsystem: subsystem 'nope' is not one of"),
    ("service = X\nsubsystem = system\ninterval = soon\n", "5: [c] interval: 'soon' is not"),
    ("service = X\nsubsystem = system\ntimeout = 90\n", "timeout 90s is longer than"),
    ("service = X\nsubsystem = system\nroles = moon\n", "role 'moon' is not one of"),
    ("service = X\nsubsystem = system\nargs = -t 5\n", "-t is not allowed here"),
    ("service = X\nsubsystem = system\nargs = --frobnicate\n", "unrecognized arguments"),
    ("service = X\nsubsystem = system\nargs = -p '/unclosed\n", "No closing quotation"),
    ("service = X\nsubsystem = system\ncolour = red\n", "unknown key 'colour'"),
    ("service = X|Y\nsubsystem = system\n", "at most 128 bytes, none of"),
    ("subsystem = system\n", "service is required"),
])
def test_bad_values_are_named(body: str, expect: str) -> None:
    msg = _err("[c]\nplugin = load\n" + body)
    assert msg.startswith("checks.conf:") and expect in msg, msg


def test_duplicate_service_and_empty_file() -> None:
    msg = _err("[a]\nplugin = load\nservice = L\nsubsystem = system\n"
               "[b]\nplugin = load\nservice = L\nsubsystem = system\n")
    assert "service 'L' is also [a]" in msg
    assert "no checks" in _err("# nothing\n")
    assert "Duplicate" in _err("[a]\nplugin = load\n[a]\n") or "already exists" in \
        _err("[a]\nplugin = load\n[a]\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="checks file not found"):
        load_checks(tmp_path / "none.conf")


def test_strict_reading_lists_every_bad_section_at_once() -> None:
    text = ("[a]\nplugin = nope\nservice = A\nsubsystem = system\n"
            "[b]\nplugin = load\nservice = B\nsubsystem = system\n"
            "[c]\nplugin = load\nservice = C\nsubsystem = galaxy\n")
    with pytest.raises(CatalogError) as err:
        parse_checks(text, "checks.conf")
    assert "checks.conf:2: [a] plugin" in str(err.value)
    assert "checks.conf:12: [c] subsystem" in str(err.value)
    assert "[b]" not in str(err.value)
