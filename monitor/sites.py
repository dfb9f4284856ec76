"""The sites file (``etc/sites.conf``): which sites, hosts and roles the central Nagios expects.

INI, one section per site, one line per host::

    [site site-a]
    # host_name = role [address]
    vigil-primary = primary 10.0.1.10
    vigil-db2     = primary

Roles are those of ``[Site] Role``: ``primary``, ``secondary``, ``central``,
``all``. A host name is what that server's ``[Site] Host_Name`` says; the
site name is its ``[Site] Name``. The site name also names the site's
virtual host in Nagios, so it may not be a host name as well.
"""

from __future__ import annotations

import configparser
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

ROLES = ("primary", "secondary", "central", "all")
# Nagios' illegal_object_name_chars plus blanks; NSCA carries at most 63 bytes of host name.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


class SitesFileError(ValueError):
    """The sites file cannot be used; the message names the file and the line's section."""


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    address: str
    site: str


@dataclass(frozen=True)
class Site:
    name: str
    hosts: tuple[Host, ...]


def check_name(what: str, value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} must be 1-63 letters, digits, '.', '_', ':' or '-', "
                         "starting with a letter or digit")
    return value


def parse(text: str, source: str = "<sites>") -> list[Site]:
    parser = configparser.ConfigParser(interpolation=None, strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # host names keep case
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        raise SitesFileError(f"{source}: not a valid sites file: "
                             f"{str(exc).splitlines()[0]}") from None
    sites: list[Site] = []
    seen_hosts: dict[str, str] = {}
    for section in parser.sections():
        kind, _, site_name = section.partition(" ")
        site_name = site_name.strip()
        if kind.lower() != "site" or not site_name:
            raise SitesFileError(f"{source}: [{section}]: sections are [site NAME]")
        try:
            check_name("site name", site_name)
        except ValueError as exc:
            raise SitesFileError(f"{source}: [{section}]: {exc}") from None
        hosts = []
        for host_name, value in parser.items(section):
            where = f"{source}: [{section}] {host_name}"
            try:
                check_name("host name", host_name)
            except ValueError as exc:
                raise SitesFileError(f"{where}: {exc}") from None
            words = value.split()
            if not words or words[0].lower() not in ROLES or len(words) > 2:
                raise SitesFileError(f"{where}: {value!r} is not '<role> [address]' with role "
                                     f"one of {', '.join(ROLES)}")
            address = words[1] if len(words) == 2 else host_name
            if len(words) == 2:
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    try:
                        check_name("address", address)
                    except ValueError as exc:
                        raise SitesFileError(f"{where}: {exc}") from None
            if host_name in seen_hosts:
                raise SitesFileError(f"{where}: host {host_name} is already in site "
                                     f"{seen_hosts[host_name]}")
            seen_hosts[host_name] = site_name
            hosts.append(Host(host_name, words[0].lower(), address, site_name))
        if not hosts:
            raise SitesFileError(f"{source}: [{section}]: a site needs at least one host")
        sites.append(Site(site_name, tuple(hosts)))
    if not sites:
        raise SitesFileError(f"{source}: no [site NAME] sections")
    for site in sites:
        if site.name in seen_hosts:
            raise SitesFileError(f"{source}: [site {site.name}]: the site's name is also a host "
                                 "name; the site's virtual host in Nagios needs its own name")
    names = [s.name for s in sites]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SitesFileError(f"{source}: site {sorted(dupes)[0]} is listed twice")
    return sites


def load(path: str | Path) -> list[Site]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SitesFileError(f"{path}: cannot read the sites file: {exc.strerror}") from None
    return parse(text, str(path))
