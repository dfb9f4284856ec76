"""Every check_vigil_* plugin, installed by `vigil plugins install`, run as the `nagios`
user from the stock Nagios command definition in docs/plugins.md (real runuser, real
files and permissions; no Vigil process is needed for a plugin to answer)."""

from __future__ import annotations

import grp
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks import PLUGINS
from checks.testing import SECRET, write_config

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<name>[A-Z0-9_-]+) (?P<state>OK|WARNING|CRITICAL|UNKNOWN): \S.*$")
CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root and runuser")


def as_nagios(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "nagios", "--", "env", "-i",
                           *(f"{k}={v}" for k, v in env.items()), *argv],
                          capture_output=True, text=True, timeout=60, check=False)


def stock_command_line() -> str:
    doc = (ROOT / "docs" / "plugins.md").read_text()
    m = re.search(r"command_name\s+check_vigil\s*\n\s*command_line\s+(.+)", doc)
    assert m, "docs/plugins.md has no stock check_vigil command definition"
    return m.group(1).strip()


@pytest.fixture(scope="module")
def public_dir() -> Iterator[Path]:
    """A folder the nagios user may traverse (pytest's tmp_path is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="vigil-nagios-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def program(public_dir: Path) -> str:
    """A vigil-check the nagios user can execute.

    This test machine's virtualenv Python lives under /root (0700); the appliance
    builds its virtualenv from /usr/bin/python3, which is what this reproduces:
    a virtualenv of /usr/bin/python3 seeing this checkout and its packages.
    """
    venv_prog = str(Path(sys.executable).with_name("vigil-check"))
    probe = as_nagios([sys.executable, "-c", "0"], {})
    if probe.returncode == 0:
        return venv_prog
    shim = public_dir / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(shim)], check=True)
    site = next(shim.glob("lib/python3*/site-packages"))
    ours = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    (site / "vigil-checkout.pth").write_text(f"{ROOT}\n{ours}\n")
    prog = shim / "bin" / "vigil-check"
    prog.write_text(f"#!{shim}/bin/python\nimport sys\nfrom checks.cli import main\n"
                    "sys.exit(main())\n")
    prog.chmod(0o755)
    return str(prog)


@pytest.fixture(scope="module")
def installed(public_dir: Path, program: str) -> dict[str, Path]:
    state = public_dir / "state"
    state.mkdir(mode=0o755)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a RADIUS server that is hung
    silent.bind(("127.0.0.1", 0))
    conf = write_config(public_dir / "vigil.conf", state, {
        "Radius": {"Host": "127.0.0.1", "Auth_Port": silent.getsockname()[1],
                   "Acct_Port": silent.getsockname()[1]},
        "NSCA": {"Password": "nsca-password-not-for-plugins"},
        "Master": {"URL": "mysql+pymysql://admin:master-pw@127.0.0.1:1/vigil"},
    })
    paths = {"conf": conf, "dir": public_dir / "plugins", "settings": public_dir / "plugins.conf",
             "state": public_dir / "nagios-state"}
    r = subprocess.run([str(Path(sys.executable).with_name("vigil")), "-c", str(conf),
                        "plugins", "install", "--dir", str(paths["dir"]), "--settings",
                        str(paths["settings"]), "--state-dir", str(paths["state"]),
                        "--program", program], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
    yield paths  # type: ignore[misc]
    silent.close()


def test_settings_file_holds_what_plugins_need_and_no_more(installed: dict[str, Path]) -> None:
    st = installed["settings"].stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, grp.getgrnam("nagios").gr_gid)
    text = installed["settings"].read_text()
    assert SECRET in text                                   # the RADIUS self-test secret
    assert "nsca-password-not-for-plugins" not in text      # not a plugin's business
    assert "master-pw" not in text and "admin" not in text  # the master account stays out
    assert "mysql+pymysql://127.0.0.1:1/vigil" in text
    assert as_nagios(["cat", str(installed["conf"])], {}).returncode != 0  # 0600 stays 0600
    assert as_nagios(["cat", str(installed["settings"])], {}).returncode == 0


def test_every_plugin_runs_as_nagios_from_the_stock_command(installed: dict[str, Path]) -> None:
    template = stock_command_line()
    links = sorted(p.name for p in installed["dir"].iterdir())
    assert links == sorted(f"check_vigil_{n}" for n in PLUGINS)
    env = {"PATH": "/usr/bin:/bin", "VIGIL_PLUGINS_CONF": str(installed["settings"])}
    seen: dict[str, str] = {}
    for name in PLUGINS:
        line = (template.replace("$USER1$", str(installed["dir"]))
                .replace("$ARG1$", name).replace("$ARG2$", "-t 3"))
        r = as_nagios(shlex.split(line), env)
        out = r.stdout.splitlines()
        assert len(out) == 1, (name, r.stdout, r.stderr)
        m = LINE.match(out[0])
        assert m, (name, out[0])
        assert m["name"] == name.upper()
        assert CODES[m["state"]] == r.returncode, (name, out[0], r.returncode)
        for bad in ("Permission denied", "PermissionError", "Traceback"):
            assert bad not in out[0] + r.stderr, (name, out[0], r.stderr)
        seen[name] = m["state"]
    # it read the self-test secret and asked the (hung) server: CRITICAL, not UNKNOWN
    assert seen["radius_auth"] == "CRITICAL"
    assert seen["disk"] == "OK"


def test_help_and_bad_arguments_exit_unknown_as_nagios(installed: dict[str, Path]) -> None:
    prog = str(installed["dir"] / "check_vigil_load")
    env = {"PATH": "/usr/bin:/bin", "VIGIL_PLUGINS_CONF": str(installed["settings"])}
    assert as_nagios([prog, "--help"], env).returncode == 3
    bad = as_nagios([prog, "-w", "x"], env)
    assert bad.returncode == 3 and bad.stdout.startswith("LOAD UNKNOWN: ")
    assert "check_vigil_load" in bad.stdout
