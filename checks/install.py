"""Vigil's plugins as a stock Nagios, NRPE or Icinga runs them: ``check_vigil_<name>``.

:func:`plan` works out, and :func:`apply` carries out (idempotently):

- a ``check_vigil_<name>`` symlink per plugin in the Monitoring Plugins folder
  (``/usr/lib/nagios/plugins``) to the ``vigil-check`` program, which picks
  the plugin from the name it was started by (``argv[0]``);
- the ``nagios`` group and user when absent (Debian's nagios4 creates them);
- the plugin settings file (``/etc/vigil/plugins.conf``, mode 0640
  root:nagios): only the options plugins read, copied from ``vigil.conf``
  (which stays 0600). Secrets are left out except the ones a plugin needs:
  the RADIUS self-test secret and password, and the read-only database
  account ``[Checks] DB_User``/``DB_Password``; ``[Master] URL`` loses any
  credentials it holds and ``[Master] User``/``Password`` are never copied;
- a state folder the ``nagios`` user owns (``[Checks] State_Dir`` in that
  file), since plugins run by Nagios keep their counters apart from the
  scheduler's.
"""

from __future__ import annotations

import configparser
import grp
import io
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from checks import PLUGINS

PLUGIN_DIR = Path("/usr/lib/nagios/plugins")
PLUGIN_CONF = Path("/etc/vigil/plugins.conf")
PLUGIN_STATE_DIR = Path("/var/lib/vigil/nagios-checks")
PLUGIN_CONF_ENV = "VIGIL_PLUGINS_CONF"
PREFIX = "check_vigil_"
NAGIOS = "nagios"

# Sections plugins read; within them every option is copied except secrets.
PLUGIN_SECTIONS = ("Site", "Checks", "Log", "Radius", "Self Test", "Replication", "NSCA",
                   "Email", "Supervisor")
# The only secrets a plugin needs (the whole point of the separate file).
PLUGIN_SECRETS = {("self test", "shared_secret"), ("self test", "password"),
                  ("checks", "db_password")}
_NOT_FOR_PLUGINS = {("checks", "state_dir")}  # replaced by the nagios user's own folder


@dataclass
class Plan:
    plugin_dir: Path
    program: str
    conf_path: Path
    state_dir: Path
    group: str
    links: dict[str, str] = field(default_factory=dict)   # link name -> target
    conf_text: str = ""
    create_group: bool = False
    create_user: bool = False
    left_out: list[str] = field(default_factory=list)     # secrets not copied
    warnings: list[str] = field(default_factory=list)


def _exists(kind: str, name: str) -> bool:
    try:
        (grp.getgrnam if kind == "group" else pwd.getpwnam)(name)
    except KeyError:
        return False
    return True


def plan(config_path: str | None, *, plugin_dir: Path = PLUGIN_DIR,
         conf_path: Path = PLUGIN_CONF, state_dir: Path = PLUGIN_STATE_DIR,
         group: str = NAGIOS, program: str | None = None) -> Plan:
    from checks.catalog import vigil_check_program
    from vigil.config import find_config_file

    prog = program or vigil_check_program()
    p = Plan(plugin_dir, prog, conf_path, state_dir, group)
    p.links = {f"{PREFIX}{name}": prog for name in PLUGINS}
    p.create_group = not _exists("group", group)
    p.create_user = group == NAGIOS and not _exists("user", NAGIOS)
    found = find_config_file(config_path)
    p.conf_text = plugin_settings(found, state_dir, p)
    why = nagios_cannot_run(prog)
    if why:
        p.warnings.append(f"the {NAGIOS} user cannot run {prog}: {why} (install Vigil in a "
                          "virtualenv built from /usr/bin/python3 in a folder it can read)")
    return p


def nagios_cannot_run(program: str) -> str:
    """Why the nagios user cannot start ``program`` ("" when it can, or when we cannot tell)."""
    if os.geteuid() != 0 or not _exists("user", NAGIOS) or not shutil.which("runuser"):
        return ""
    try:
        r = subprocess.run(["runuser", "-u", NAGIOS, "--", program, "--version"],
                           capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    # vigil-check --version exits 3 (the guidelines' UNKNOWN) and prints its version
    return "" if "vigil-check" in r.stdout else (r.stderr.strip() or f"exit {r.returncode}")


def plugin_settings(source: Path | None, state_dir: Path, p: Plan | None = None) -> str:
    """The plugin settings file's text, from ``source`` (vigil.conf)."""
    from vigil.config import declared  # every option, secrets marked

    registry = {(o.section.lower(), o.name.lower()): o for o in declared()}

    raw = configparser.ConfigParser(interpolation=None, strict=True)
    raw.optionxform = str  # type: ignore[assignment,method-assign]
    if source is not None:
        raw.read(source, encoding="utf-8")
    out = configparser.ConfigParser(interpolation=None)
    out.optionxform = str  # type: ignore[assignment,method-assign]
    wanted = {s.lower() for s in PLUGIN_SECTIONS}
    base = source.parent if source is not None else Path.cwd()
    for section in raw.sections():
        low = section.lower()
        if low == "master" and raw.has_option(section, "URL"):
            out.setdefault("Master", {})
            out["Master"]["URL"] = strip_credentials(raw.get(section, "URL"))
            continue
        if low not in wanted:
            continue
        for name, value in raw.items(section):
            key = (low, name.lower())
            opt = registry.get(key)
            if key in _NOT_FOR_PLUGINS:
                continue
            if opt is not None and opt.secret and key not in PLUGIN_SECRETS:
                if p is not None and value.strip():
                    p.left_out.append(f"[{section}] {name}")
                continue
            if section not in out:
                out[section] = {}
            out[section][name] = _absolute(opt, value, base)
    if "Checks" not in out:
        out["Checks"] = {}
    out["Checks"]["State_Dir"] = str(state_dir)
    has_db_user = raw.has_section("Checks") and raw.get("Checks", "DB_User", fallback="").strip()
    if p is not None and not has_db_user:
        p.warnings.append("no [Checks] DB_User: database plugins run by nagios have no "
                          "credentials (create a read-only account: GRANT SELECT, PROCESS, "
                          "REPLICATION CLIENT ON *.* TO ...)")
    buf = io.StringIO()
    buf.write(f"# Vigil plugin settings for the {NAGIOS} user (mode 0640 root:{NAGIOS}),\n"
              f"# written by `vigil plugins install` from {source or 'the defaults'}.\n"
              "# Only what check_vigil_* plugins read; do not edit: edit vigil.conf and "
              "re-run it.\n")
    out.write(buf)
    return buf.getvalue()


def _absolute(opt: object, value: str, base: Path) -> str:
    """Relative paths in vigil.conf are taken from its folder; keep their meaning here."""
    from vigil.config import path as path_converter

    if opt is not None and getattr(opt, "convert", None) is path_converter:
        v = value.strip()
        if v and not os.path.isabs(v):
            return str((base / v).resolve())
    return value


def strip_credentials(url: str) -> str:
    """``mysql+pymysql://user:pw@host/db`` -> ``mysql+pymysql://host/db``."""
    return re.sub(r"^([a-z0-9+]+://)[^@/]*@", r"\1", url.strip())


def apply(p: Plan) -> list[str]:
    """Carry out the plan; returns what was done, one line each. Needs root."""
    done: list[str] = []
    if p.create_group:
        subprocess.run(["groupadd", "--system", p.group], check=True)
        done.append(f"created group {p.group}")
    if p.create_user:
        subprocess.run(["useradd", "--system", "--gid", p.group, "--home-dir",
                        "/var/lib/nagios", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        NAGIOS], check=True)
        done.append(f"created user {NAGIOS}")
    gid = grp.getgrnam(p.group).gr_gid
    p.plugin_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(p.plugin_dir.glob(f"{PREFIX}*")):
        # a plugin that no longer exists: only our own links, never a file someone put there
        if stale.name not in p.links and stale.is_symlink() and \
                Path(os.readlink(stale)).name == "vigil-check":
            stale.unlink()
            done.append(f"removed {stale} (no such plugin any more)")
    for name, target in p.links.items():
        link = p.plugin_dir / name
        if link.is_symlink() and os.readlink(link) == target:
            continue
        tmp = link.with_name(f".{name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
        done.append(f"linked {link} -> {target}")
    p.conf_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_conf = p.conf_path.with_name(f".{p.conf_path.name}.tmp")
    fd = os.open(tmp_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchown(fh.fileno(), 0, gid)
        os.fchmod(fh.fileno(), 0o640)
        fh.write(p.conf_text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_conf, p.conf_path)
    done.append(f"wrote {p.conf_path} (0640 root:{p.group})")
    nagios_uid = pwd.getpwnam(NAGIOS).pw_uid if _exists("user", NAGIOS) else 0
    p.state_dir.mkdir(parents=True, exist_ok=True)
    os.chown(p.state_dir, nagios_uid, gid)
    os.chmod(p.state_dir, 0o750)
    done.append(f"state folder {p.state_dir} (0750 {NAGIOS}:{p.group})")
    return done
