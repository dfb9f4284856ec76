"""The checks file (``etc/checks.conf``, INI): which plugins a server runs, and how.

One section per check; the section name is the check's name (unique, also its
runbook anchor ``docs/checks.md#check-<name>``)::

    [DEFAULT]
    interval = 60            # seconds between runs
    timeout = 10             # the scheduler's hard limit; the plugin gets -t timeout-1
    roles = primary, secondary

    [disk_var]
    plugin = disk            # default: the section name
    service = Disk /var      # the Nagios service_description
    subsystem = system       # the Nagios service group
    args = -p /var -w 80 -c 90

:func:`read_checks` is the one reader of this file. It validates every
section on its own: an unknown plugin, a bad threshold or option, a bad
interval, a duplicate service name; each problem names the file, the line and
the section. Two ways to take its answer:

- strict (:func:`load_checks`, :func:`parse_checks`; ``vigil monitor check``,
  the central Nagios configuration): any bad section refuses the file, every
  problem listed at once (:class:`CatalogError`);
- tolerant (``tolerant=True``; the scheduler): the good checks run and each bad
  one becomes a :class:`BrokenCheck` the scheduler reports UNKNOWN every pass,
  with the same message, so one typo never silences the whole server (the
  central Nagios would page for a DOWN host instead of the one check).

Only a file that is not readable INI at all is refused in both modes.
"""

from __future__ import annotations

import configparser
import logging
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from checks import PLUGINS

log = logging.getLogger(__name__)
SUBSYSTEMS = ("radius", "billing", "database", "replication", "nsca", "system",
              "redundancy", "monitor")
ROLES = ("primary", "secondary", "central", "all")
KEYS = ("plugin", "service", "subsystem", "args", "interval", "timeout", "roles")
# Nagios' default illegal_object_name_chars, plus what breaks an NSCA line
_ILLEGAL_SERVICE = set("`~!$%^&*|'\"<>?,()=;\t\n")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class CatalogError(ValueError):
    """The checks file cannot be used; the message names file, line and section."""


@dataclass(frozen=True)
class CheckSpec:
    """One check as the scheduler runs it and the central Nagios knows it.

    ``command`` is complete: ``[vigil-check, plugin, *args, "-t", plugin_timeout]``
    where the plugin's own ``-t`` is one second under ``timeout_sec``, so the
    plugin reports its timeout itself before the scheduler has to kill it.
    The config file reaches the plugin through ``VIGIL_CONF`` (set by
    ``vigil supervisord``).
    """

    name: str
    service_description: str
    command: tuple[str, ...]
    interval_sec: int
    timeout_sec: float
    subsystem: str
    plugin: str
    args: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()   # empty: every role
    line: int = 0                 # where the section starts in the file
    problem: str = ""             # always empty: a check that cannot run is a BrokenCheck


@dataclass(frozen=True)
class BrokenCheck:
    """A check the file names but that cannot run; the scheduler reports it UNKNOWN."""

    name: str
    service_description: str
    problem: str
    interval_sec: float = 60
    timeout_sec: float = 10
    subsystem: str = "monitor"
    roles: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    line: int = 0


def vigil_check_program() -> str:
    """The ``vigil-check`` next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("vigil-check")
    if beside.exists():
        return str(beside)
    return shutil.which("vigil-check") or "vigil-check"


def load_checks(path: str | Path, role: str | None = None, *, tolerant: bool = False
                ) -> list[CheckSpec | BrokenCheck]:
    """Every check of the file (only those of ``role`` if given), validated.

    Strict (the default) raises :class:`CatalogError` listing every bad
    section; ``tolerant`` returns them as :class:`BrokenCheck` instead.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: checks file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from None
    checks = read_checks(text, str(path), role)
    if tolerant:
        return checks
    return list(_strict(checks))


def parse_checks(text: str, source: str = "<checks>", role: str | None = None
                 ) -> list[CheckSpec]:
    """The checks of ``text``; :class:`CatalogError` naming every bad section."""
    return _strict(read_checks(text, source, role))


def _strict(checks: list[CheckSpec | BrokenCheck]) -> list[CheckSpec]:
    broken = [c.problem for c in checks if isinstance(c, BrokenCheck)]
    if broken:
        raise CatalogError("; ".join(broken))
    return [c for c in checks if isinstance(c, CheckSpec)]


def read_checks(text: str, source: str = "<checks>", role: str | None = None
                ) -> list[CheckSpec | BrokenCheck]:
    """Each section as a :class:`CheckSpec`, or a :class:`BrokenCheck` saying what is wrong."""
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       inline_comment_prefixes=("#", ";"))
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        raise CatalogError(" ".join(str(exc).split())) from None
    if not parser.sections():
        raise CatalogError(f"{source}: no checks (one [section] per check)")
    lines = _line_numbers(text)
    program = vigil_check_program()
    out: list[CheckSpec | BrokenCheck] = []
    services: dict[str, str] = {}
    for name in parser.sections():
        spec: CheckSpec | BrokenCheck
        try:
            spec = _spec(parser, name, lines, source, program)
        except CatalogError as exc:
            spec = _broken(parser[name], name, str(exc), lines)
        desc = spec.service_description
        if desc in services:
            where = _where(source, lines, name, "service")
            spec = BrokenCheck(name, f"{desc} ({name})",
                               f"{where}: service {desc!r} is also [{services[desc]}]",
                               line=lines.get((name.lower(), ""), 0))
        services[spec.service_description] = name
        if isinstance(spec, BrokenCheck):
            log.error("checks file: check %s will report UNKNOWN: %s", name, spec.problem)
        out.append(spec)
    if role is not None:
        out = [s for s in out if not s.roles or role == "all" or role in s.roles
               or "all" in s.roles]
    return out


def _broken(sec: configparser.SectionProxy, name: str, problem: str,
            lines: dict[tuple[str, str], int]) -> BrokenCheck:
    """What can be salvaged of a bad section, so its UNKNOWN lands on the right service."""
    desc = sec.get("service", "").strip()
    if not desc or set(desc) & _ILLEGAL_SERVICE or len(desc.encode()) > 128:
        desc = name
    subsystem = sec.get("subsystem", "").strip()
    if subsystem not in SUBSYSTEMS:
        subsystem = "monitor"
    try:
        interval = max(10.0, float(sec.get("interval", "60")))
    except ValueError:
        interval = 60.0
    roles = tuple(r.strip() for r in sec.get("roles", "").split(",") if r.strip())
    return BrokenCheck(name, desc, problem, interval_sec=interval, subsystem=subsystem,
                       roles=roles, line=lines.get((name.lower(), ""), 0))


def _spec(parser: configparser.ConfigParser, name: str, lines: dict[tuple[str, str], int],
          source: str, program: str) -> CheckSpec:
    sec = parser[name]

    def fail(key: str, why: str) -> CatalogError:
        return CatalogError(f"{_where(source, lines, name, key)}: {why}")

    if not _NAME.match(name):
        raise fail("", f"check name {name!r}: use lower-case letters, digits and _ "
                       "(it is also the runbook anchor)")
    for key in sec:
        if key not in KEYS:
            raise fail(key, f"unknown key {key!r} (allowed: {', '.join(KEYS)})")
    plugin = sec.get("plugin", name).strip()
    if plugin not in PLUGINS:
        raise fail("plugin", f"plugin {plugin!r} does not exist (`vigil-check --list` "
                             "shows the plugins)")
    service = sec.get("service", "").strip()
    if not service:
        raise fail("service", "service is required (the Nagios service description)")
    bad = sorted(set(service) & _ILLEGAL_SERVICE)
    if bad or len(service.encode()) > 128:
        raise fail("service", f"service {service!r}: at most 128 bytes, none of "
                              f"{''.join(sorted(_ILLEGAL_SERVICE)).strip()!r}")
    subsystem = sec.get("subsystem", "").strip()
    if subsystem not in SUBSYSTEMS:
        raise fail("subsystem", f"subsystem {subsystem!r} is not one of "
                                f"{', '.join(SUBSYSTEMS)}")
    interval = int(_number(sec.get("interval", "60"), int, 10, 86400,
                           lambda why: fail("interval", why)))
    timeout = _number(sec.get("timeout", "10"), float, 2, 3600,
                      lambda why: fail("timeout", why))
    if timeout > interval:
        raise fail("timeout", f"timeout {timeout:g}s is longer than the interval {interval}s")
    roles = tuple(r.strip() for r in sec.get("roles", "").split(",") if r.strip())
    for r in roles:
        if r not in ROLES:
            raise fail("roles", f"role {r!r} is not one of {', '.join(ROLES)}")
    try:
        args = tuple(shlex.split(sec.get("args", ""), comments=False))
    except ValueError as exc:
        raise fail("args", f"args: {exc}") from None
    for a in args:
        if a in ("-t", "--timeout", "--config", "-h", "--help", "-V", "--version") or \
                a.startswith(("--timeout=", "--config=")):
            raise fail("args", f"args: {a} is not allowed here (timeout comes from "
                               "'timeout', the config from VIGIL_CONF)")
    _check_arguments(plugin, args, fail)
    plugin_t = max(1.0, timeout - 1)
    command = (program, plugin, *args, "-t", f"{plugin_t:g}")
    return CheckSpec(name, service, command, interval, timeout, subsystem, plugin, args,
                     roles, lines.get((name.lower(), ""), 0))


def _check_arguments(plugin: str, args: tuple[str, ...],
                     fail: Callable[[str, str], CatalogError]) -> None:
    """Parse the args with the plugin's own parser, without running anything."""
    from checks.plugin import UsageError, _HelpRequested, parse_arguments, plugin_class

    try:
        cls = plugin_class(plugin)
    except Exception as exc:  # a module that does not import
        raise fail("plugin", f"plugin {plugin} cannot be loaded: {type(exc).__name__}: "
                             f"{exc}") from None
    try:
        parse_arguments(cls(), args)
    except UsageError as exc:
        raise fail("args", f"args for {plugin}: {exc}") from None
    except _HelpRequested:
        raise fail("args", "args: --help/--version are not allowed") from None


def _number(text: str, kind: Callable[[str], float], lo: float, hi: float,
            fail: Callable[[str], CatalogError]) -> float:
    try:
        value = kind(text.strip())
    except ValueError:
        whole = "whole " if kind is int else ""
        raise fail(f"{text!r} is not a {whole}number of seconds") from None
    if not lo <= value <= hi:
        raise fail(f"{value:g} is outside {lo:g}..{hi:g} seconds")
    return value


def _line_numbers(text: str) -> dict[tuple[str, str], int]:
    """(section, key) -> line number; (section, "") is the section header."""
    out: dict[tuple[str, str], int] = {}
    section = ""
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and "]" in line:
            section = line[1:line.index("]")].strip().lower()
            out.setdefault((section, ""), no)
        elif raw[:1] not in (" ", "\t"):
            key = re.split(r"[=:]", line, maxsplit=1)[0].strip().lower()
            out.setdefault((section, key), no)
    return out


def _where(source: str, lines: dict[tuple[str, str], int], section: str, key: str) -> str:
    no = (lines.get((section.lower(), key)) or lines.get(("default", key))
          or lines.get((section.lower(), "")) or 0)
    return f"{source}:{no}: [{section}]" + (f" {key}" if key else "")
