"""The checks file, read through the checks room's loader, with errors made ours.

``checks.catalog.load_checks(path)`` (owned by the checks room) returns the
``CheckSpec`` list; any failure to read or understand the file becomes a
:class:`CatalogError` naming the file, so ``vigil monitor ...`` exits 2 with
one clear line. A check whose plugin does not exist is *not* an error here:
the scheduler reports it UNKNOWN at every pass (and logs it), so the other
checks keep running and the central Nagios shows what is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from monitor.scheduler import CheckLike

log = logging.getLogger(__name__)


class CatalogError(Exception):
    """The checks file cannot be used."""


def load(path: str | Path) -> Sequence[CheckLike]:
    try:
        from checks.catalog import load_checks
    except ImportError as exc:
        raise CatalogError(f"the checks room is not installed (checks.catalog: {exc})") from exc
    if not Path(path).exists():
        raise CatalogError(f"{path}: checks file not found")
    try:
        specs = load_checks(str(path))
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    return list(specs)
