"""Disk space used on the file system holding a path, in percent (as ``df`` counts it)."""

from __future__ import annotations

import argparse
import os
import sys

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading


def statvfs(path: str) -> os.statvfs_result:
    try:
        return os.statvfs(path)
    except OSError as exc:
        raise PluginError(f"cannot stat {path}: {exc.strerror}") from None


class Disk(Plugin):
    name = "disk"
    title = "Disk space used on the file system holding a path"
    label = "used"
    uom = "%"
    warning = "80"
    critical = "90"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-p", "--path", default="/",
                            help="a path on the file system to check (default /)")

    def probe(self, ctx: Context) -> Reading:
        path = ctx.args.path
        st = statvfs(path)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        avail = st.f_bavail * st.f_frsize
        if used + avail <= 0:
            raise PluginError(f"{path}: file system reports no size")
        # df's Use%: what non-root users can still get, so reserved blocks count as used
        pct = 100.0 * used / (used + avail)
        return Reading(round(pct, 2), f"{pct:.1f}% used on {path}, {avail / 2**30:.2f} GiB free",
                       min=0, max=100,
                       extra=[_bytes("free", avail, st.f_blocks * st.f_frsize)])


def _bytes(label: str, value: int, total: int) -> Perfdata:
    return Perfdata(label, value, "B", min=0, max=total)


PLUGIN = Disk

if __name__ == "__main__":
    sys.exit(Disk.main())
