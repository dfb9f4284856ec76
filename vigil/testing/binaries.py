"""The Debian programs the tests drive, and what a missing one means.

A machine without, say, nagios4 cannot run the tests that need it: those
tests are skipped with the package to install, not reported as errors. The
names here are the only ones treated so; a missing file that is not one of
them is a bug and stays an error.
"""

from __future__ import annotations

import os
import shutil

# program -> the Debian package that brings it (scripts/install-system-deps.sh installs them)
PACKAGES: dict[str, str] = {
    "mariadbd": "mariadb-server", "mysqld": "mariadb-server",
    "mariadb-install-db": "mariadb-server", "mysql_install_db": "mariadb-server",
    "mariadb-dump": "mariadb-client", "mariadb": "mariadb-client",
    "mariabackup": "mariadb-backup", "mbstream": "mariadb-backup",
    "freeradius": "freeradius", "radiusd": "freeradius",
    "radclient": "freeradius-utils", "radtest": "freeradius-utils",
    "nsca": "nsca", "send_nsca": "nsca-client",
    "nsca-ng": "nsca-ng-server", "send_nsca-ng": "nsca-ng-client",
    "nagios4": "nagios4-core", "chromium": "chromium", "lighttpd": "lighttpd",
    "ip": "iproute2", "nft": "nftables", "taskset": "util-linux",
}


class MissingBinary(RuntimeError):
    """A program the test needs is not installed; the message names its package."""

    def __init__(self, name: str) -> None:
        self.name = os.path.basename(name)
        package = PACKAGES.get(self.name, "?")
        super().__init__(f"{self.name} is not installed (Debian package {package}; make setup)")


def need(name: str, *candidates: str) -> str:
    """The path of program ``name`` (on PATH or one of ``candidates``), or ``MissingBinary``."""
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise MissingBinary(name)
    return found


def is_known_missing(exc: BaseException) -> str | None:
    """Why ``exc`` means "a known program is not installed", or None for any other error."""
    if isinstance(exc, MissingBinary):
        return str(exc)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        name = os.path.basename(str(exc.filename))
        if name in PACKAGES and not os.path.exists(str(exc.filename)):
            return str(MissingBinary(name))
    return None
