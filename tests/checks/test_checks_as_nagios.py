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

pytestmark = [
    pytest.mark.integration,  # plugins run as the nagios user, and by a stock nagios4
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"),
                       reason="needs root and runuser"),
]


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


def test_install_is_idempotent_and_prunes_only_its_own_stale_links(
        installed: dict[str, Path], program: str) -> None:
    from checks import install as inst

    d = installed["dir"]
    (d / "check_vigil_gone").symlink_to(program)           # a plugin since removed
    (d / "check_vigil_local").write_text("#!/bin/sh\n")   # someone's own script: kept
    p = inst.plan(str(installed["conf"]), plugin_dir=d, conf_path=installed["settings"],
                  state_dir=installed["state"], program=program)
    done = inst.apply(p)
    assert f"removed {d / 'check_vigil_gone'} (no such plugin any more)" in done
    assert not [line for line in done if line.startswith("linked")]  # already in place
    assert (d / "check_vigil_local").exists()
    (d / "check_vigil_local").unlink()


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


def stock_objects() -> str:
    """The command and service definitions of docs/plugins.md, as written there."""
    doc = (ROOT / "docs" / "plugins.md").read_text()
    block = doc.split("## Nagios (stock command definition)", 1)[1].split("```", 2)[1]
    assert "define command" in block and "define service" in block
    return block


@pytest.mark.skipif(not Path("/usr/sbin/nagios4").exists(), reason="needs Debian nagios4")
def test_a_stock_nagios4_runs_them_as_nagios(installed: dict[str, Path],
                                             public_dir: Path) -> None:
    """nagios4 (user nagios, Debian's stock templates) schedules the documented services."""
    import time

    d = public_dir / "nagios"
    (d / "checkresults").mkdir(parents=True)
    nagios = grp.getgrnam("nagios").gr_gid
    for p in (d, d / "checkresults"):
        os.chown(p, pwd_uid("nagios"), nagios)
    (d / "resource.cfg").write_text(f"$USER1$={installed['dir']}\n")
    (d / "vigil.cfg").write_text(
        "define host {\n  use generic-host\n  host_name vigil-primary\n  address 127.0.0.1\n"
        "  check_command check_vigil!load\n  max_check_attempts 1\n  check_period 24x7\n"
        "  contact_groups admins\n}\n" + stock_objects())
    stock = Path("/etc/nagios4/objects")
    (d / "nagios.cfg").write_text("\n".join([
        *(f"cfg_file={stock / f}" for f in ("commands.cfg", "contacts.cfg", "timeperiods.cfg",
                                            "templates.cfg")),
        f"cfg_file={d / 'vigil.cfg'}", f"resource_file={d / 'resource.cfg'}",
        f"log_file={d / 'nagios.log'}", f"status_file={d / 'status.dat'}",
        f"temp_file={d / 'nagios.tmp'}", f"lock_file={d / 'nagios.lock'}",
        f"check_result_path={d / 'checkresults'}", f"command_file={d / 'nagios.cmd'}",
        f"state_retention_file={d / 'retention.dat'}", "retain_state_information=0",
        "nagios_user=nagios", "nagios_group=nagios", "check_external_commands=1",
        "status_update_interval=1", "max_service_check_spread=1", "max_host_check_spread=1",
        "enable_notifications=0", "query_socket=" + str(d / "query.sock"),
        "illegal_macro_output_chars=`~$&|'\"<>", ""]))
    verify = subprocess.run(["/usr/sbin/nagios4", "-v", str(d / "nagios.cfg")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert verify.returncode == 0, verify.stdout[-2000:]
    env = {"PATH": "/usr/bin:/bin", "VIGIL_PLUGINS_CONF": str(installed["settings"])}
    with subprocess.Popen(["/usr/sbin/nagios4", str(d / "nagios.cfg")], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (d / "nagios.cmd").exists():
                time.sleep(0.2)
            now = int(time.time())
            with open(d / "nagios.cmd", "w") as cmd:
                for svc in ("Disk /", "RADIUS authentication"):
                    cmd.write(f"[{now}] SCHEDULE_FORCED_SVC_CHECK;vigil-primary;{svc};{now}\n")
            outputs: dict[str, str] = {}
            while time.monotonic() < deadline and len(outputs) < 2:
                outputs = service_outputs(d / "status.dat")
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert outputs.get("Disk /", "").startswith("DISK OK: "), outputs
    # run by nagios with the secret from the 0640 settings file: the hung server is CRITICAL
    assert outputs.get("RADIUS authentication", "").startswith("RADIUS_AUTH CRITICAL: "), \
        outputs


def pwd_uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def service_outputs(status: Path) -> dict[str, str]:
    """service_description -> plugin_output of the services Nagios has checked."""
    try:
        text = status.read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for block in text.split("servicestatus {")[1:]:
        fields = dict(line.strip().split("=", 1) for line in block.split("}")[0].splitlines()
                      if "=" in line)
        if fields.get("has_been_checked") == "1":
            out[fields["service_description"]] = fields.get("plugin_output", "")
    return out
