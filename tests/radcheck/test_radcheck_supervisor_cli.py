"""etc/supervisord.conf and its program files; `vigil supervisord/status/radcheck --once`."""

from __future__ import annotations

import configparser
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.radcheck.radcheck_peers import REPO, VIGIL, FreeRadius, base_conf, write_conf
from vigil.supervisor_cli import ROLE_GROUPS
from vigil.testing.ports import free_udp_port

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins

PROGRAM_FILES = sorted((REPO / "etc" / "supervisor").glob("*/*.conf"))


def vigil(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIGIL, "-c", str(conf), *args], capture_output=True, text=True,
                          timeout=60)


def conf_for(tmp_path: Path, **site: object) -> Path:
    sections = base_conf(tmp_path, radius_port=free_udp_port(), smtp_port=free_udp_port(),
                         extra={"Site": dict(site)})
    return write_conf(tmp_path / "vigil.conf", sections)


@pytest.mark.parametrize("role", sorted(ROLE_GROUPS))
def test_role_picks_program_groups(tmp_path: Path, role: str) -> None:
    r = vigil(conf_for(tmp_path, Role=role), "supervisord", "--print-env")
    assert r.returncode == 0, r.stderr
    env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line
               and not line.startswith("#"))
    assert env["VIGIL_PROGRAMS"].split() == [f"supervisor/{g}/*.conf"
                                             for g in ROLE_GROUPS[role]]
    assert env["VIGIL_SUPERVISOR_SOCKET"] == str(tmp_path / "state" / "supervisor.sock")
    assert env["VIGIL_CONF"] == str(tmp_path / "vigil.conf")


def test_replication_heartbeat_only_with_a_mysql_master(tmp_path: Path) -> None:
    conf = conf_for(tmp_path, Role="primary")
    conf.write_text(conf.read_text() + "\n[Master]\nURL=mysql+pymysql://billing@127.0.0.1/b\n")
    r = vigil(conf, "supervisord", "--print-env")
    assert "supervisor/replication/*.conf" in r.stdout
    conf.write_text(conf.read_text().replace("Role=primary", "Role=secondary"))
    assert "supervisor/replication" not in vigil(conf, "supervisord", "--print-env").stdout


def test_interface_roles() -> None:
    def programs(role: str) -> set[str]:
        return {p.stem for g in ROLE_GROUPS[role]
                for p in (REPO / "etc" / "supervisor" / g).glob("*.conf")}

    assert {"radiusd", "radcheck", "monitor-scheduler"} <= programs("primary")
    assert programs("secondary") == programs("primary") | {"site-watchdog"}
    assert {"nsca-server", "nsca-relay", "nagios", "monitor-scheduler"} <= programs("central")
    assert "radiusd" not in programs("central")
    assert programs("all") == programs("primary") | programs("central")


@pytest.mark.parametrize("path", PROGRAM_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_program_file_shape_and_command_exists(path: Path) -> None:
    cp = configparser.RawConfigParser()
    cp.read(path)
    (section,) = cp.sections()
    name = section.removeprefix("program:")
    assert name == path.stem
    p = cp[section]
    assert p["stopsignal"] in ("TERM", "INT")
    assert int(p["stopwaitsecs"]) > 0
    assert p["stdout_logfile"] == f"%(ENV_VIGIL_LOG_DIR)s/{name}.log"
    assert p["redirect_stderr"] == "true"
    words = shlex.split(p["command"])
    if words[0] == "%(ENV_VIGIL_BIN)s/vigil":
        # only programs whose command exists: `vigil <subcommand...> --help` works
        sub = [w for w in words[3:] if not w.startswith("-")]
        r = subprocess.run([VIGIL, *sub, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{name}: vigil {' '.join(sub)} is not a command: {r.stderr}"
        assert words[1:3] == ["-c", "%(ENV_VIGIL_CONF)s"]


def test_missing_supervisord_conf_is_a_config_error(tmp_path: Path) -> None:
    conf = conf_for(tmp_path)
    conf.write_text(conf.read_text().replace(str(REPO / "etc" / "supervisord.conf"),
                                             "missing.conf"))
    r = vigil(conf, "supervisord")
    assert r.returncode == 2
    assert f"[Supervisor] Config_File: {tmp_path / 'missing.conf'} does not exist" in r.stderr


def test_status_without_supervisord_exits_3(tmp_path: Path) -> None:
    r = vigil(conf_for(tmp_path), "status")
    assert r.returncode == 3 and "no supervisord on" in r.stderr


def test_radcheck_once(tmp_path: Path, freeradius: FreeRadius) -> None:
    sections = base_conf(tmp_path, radius_port=freeradius.port, smtp_port=free_udp_port())
    conf = write_conf(tmp_path / "vigil.conf", sections)
    r = vigil(conf, "radcheck", "--once")
    assert r.returncode == 0 and "Access-Accept in" in r.stdout
    sections["Self Test"]["Password"] = "wrong"
    write_conf(conf, sections)
    r = vigil(conf, "radcheck", "--once", "--json")
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["ok"] is False and out["kind"] == "reject"
    assert "wrong" not in r.stdout + r.stderr  # the password is never printed


def test_too_long_socket_path_is_a_config_error(tmp_path: Path) -> None:
    sections = base_conf(tmp_path, radius_port=free_udp_port(), smtp_port=free_udp_port(),
                         extra={"Supervisor": {"Socket_File": tmp_path / ("x" * 120)}})
    conf = write_conf(tmp_path / "vigil.conf", sections)
    r = vigil(conf, "supervisord", "--print-env")
    assert r.returncode == 2
    assert "[Supervisor] Socket_File:" in r.stderr and "longer than a unix socket path" in r.stderr
