"""Inodes used on the file system holding a path, in percent."""

from __future__ import annotations

import argparse
import sys

from checks.disk import statvfs
from checks.plugin import Context, Plugin, PluginError, Reading


class Inodes(Plugin):
    name = "inodes"
    title = "Inodes used on the file system holding a path"
    label = "inodes_used"
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
        if st.f_files == 0:
            raise PluginError(f"{path}: this file system has no inode limit to check")
        used = st.f_files - st.f_ffree
        pct = 100.0 * used / st.f_files
        return Reading(round(pct, 2), f"{pct:.1f}% of inodes used on {path} "
                       f"({st.f_favail} free)", min=0, max=100)


PLUGIN = Inodes

if __name__ == "__main__":
    sys.exit(Inodes.main())
