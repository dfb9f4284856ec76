"""The checks file, read through the checks room's loader, one bad check never costing the rest.

``checks.catalog.load_checks`` (the checks room) validates the whole file and
refuses it at the first bad section: a plugin that does not exist, a
threshold written wrong. For a scheduler that would mean one typo silences
the whole server (and the central Nagios pages for a DOWN host instead of
the one check). So when the file as a whole is refused, each ``[section]``
is validated on its own by the same loader (the other sections blanked, so
line numbers stay right): the good ones run; each bad one becomes a
:class:`BrokenCheck` that the scheduler reports UNKNOWN at every pass, with
the loader's own message (``checks.conf:42: [disk_var] plugin: plugin 'dsik'
does not exist ...``), and that is logged as an error. Only a file that is
not readable INI at all is refused as a whole (:class:`CatalogError`).
"""

from __future__ import annotations

import configparser
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.scheduler import CheckLike

log = logging.getLogger(__name__)

_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
# What Nagios and NSCA can carry as a service description.
_GOOD_SERVICE = re.compile(r"^[^`~!$%^&*|'\"<>?,()=;\t\n]{1,128}$")


class CatalogError(Exception):
    """The checks file cannot be used at all."""


@dataclass(frozen=True)
class BrokenCheck:
    """A check the checks file names but that cannot run; reported UNKNOWN each pass."""

    name: str
    service_description: str
    problem: str
    interval_sec: float = 60
    timeout_sec: float = 10
    subsystem: str = "monitor"
    roles: tuple[str, ...] = ()
    command: tuple[str, ...] = ()


def load(path: str | Path, role: str | None = None) -> list[CheckLike]:
    try:
        from checks.catalog import CatalogError as RoomError
        from checks.catalog import parse_checks
    except ImportError as exc:
        raise CatalogError(f"the checks room is not installed (checks.catalog: {exc})") from exc
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: checks file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from None
    try:
        return list(parse_checks(text, str(path), role))
    except RoomError as whole:
        first_error = str(whole)
    raw = configparser.ConfigParser(interpolation=None, strict=True,
                                    inline_comment_prefixes=("#", ";"))
    try:
        raw.read_string(text, source=str(path))
    except configparser.Error:
        raise CatalogError(first_error) from None
    if not raw.sections():
        raise CatalogError(first_error)
    out: list[CheckLike] = []
    services: dict[str, str] = {}
    for name in raw.sections():
        spec: CheckLike
        try:
            parsed = parse_checks(_only(text, name), str(path), None)
            spec = parsed[0]
        except RoomError as exc:
            spec = _broken(raw, name, str(exc))
            log.error("checks file %s: check %s will report UNKNOWN: %s", path, name, exc)
        desc = spec.service_description
        if desc in services:
            # The loader's rule too; with sections parsed alone, it falls to us.
            problem = f"{path}: [{name}]: service {desc!r} is also [{services[desc]}]"
            log.error("checks file %s: check %s will report UNKNOWN: %s", path, name, problem)
            spec = BrokenCheck(name, f"{desc} ({name})", problem)
        services[spec.service_description] = name
        if _wanted(spec, role):
            out.append(spec)
    return out


def _only(text: str, wanted: str) -> str:
    """``text`` with every section but DEFAULT and ``wanted`` blanked, line numbers kept."""
    keep = True
    lines = []
    for line in text.splitlines():
        m = _SECTION.match(line)
        if m:
            name = m.group(1).strip()
            keep = name == wanted or name.upper() == "DEFAULT"
        lines.append(line if keep else "")
    return "\n".join(lines) + "\n"


def _broken(raw: configparser.ConfigParser, name: str, problem: str) -> BrokenCheck:
    from checks.catalog import SUBSYSTEMS

    sec = raw[name]
    desc = sec.get("service", "").strip()
    if not _GOOD_SERVICE.match(desc):
        desc = name
    subsystem = sec.get("subsystem", "").strip()
    if subsystem not in SUBSYSTEMS:
        subsystem = "monitor"
    try:
        interval = float(sec.get("interval", "60"))
    except ValueError:
        interval = 60.0
    roles = tuple(r.strip() for r in sec.get("roles", "").split(",") if r.strip())
    return BrokenCheck(name, desc, problem, interval_sec=max(10.0, interval),
                       subsystem=subsystem,
                       roles=roles)


def _wanted(spec: CheckLike, role: str | None) -> bool:
    roles: Sequence[str] = getattr(spec, "roles", ()) or ()
    return role is None or not roles or role == "all" or role in roles or "all" in roles
