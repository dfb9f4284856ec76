"""Log file freshness: seconds since a file was last written."""

from __future__ import annotations

import argparse
import os
import sys
import time

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading, TargetDown


class FileAge(Plugin):
    name = "file_age"
    title = "Seconds since a file (a log, a state file) was last written"
    label = "age"
    uom = "s"
    warning = "300"
    critical = "900"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-f", "--file", metavar="PATH",
                            help="the file whose freshness is checked (default the billing "
                                 "log, [Log] Log_Dest)")

    def probe(self, ctx: Context) -> Reading:
        path = ctx.args.file or str(ctx.config().path("Log", "Log_Dest"))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise TargetDown(f"{path} does not exist") from None
        except OSError as exc:
            raise PluginError(f"cannot stat {path}: {exc.strerror}") from None
        age = max(0.0, time.time() - st.st_mtime)
        return Reading(round(age, 1), f"{path} last written {age:.0f}s ago "
                       f"({st.st_size} bytes)", min=0,
                       extra=[Perfdata("size", st.st_size, "B", min=0)])


PLUGIN = FileAge

if __name__ == "__main__":
    sys.exit(FileAge.main())
