"""New ERROR (and CRITICAL) lines in the billing log since the last run.

The file's inode and the offset read up to are remembered; a rotated or
truncated log is read again from its start. The first run only sets the
baseline (an old log's past errors are not news).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from checks.perfdata import Perfdata
from checks.plugin import Context, Plugin, PluginError, Reading, TargetDown
from checks.state import load_state, save_state

# "<iso time> <logger>[pid] LEVEL conf=<id> message"
_LEVEL = re.compile(rb"^\S+ \S+ (ERROR|CRITICAL)\b")
CHUNK = 1 << 20


class LogErrors(Plugin):
    name = "log_errors"
    title = "New ERROR lines in the billing log since the last run"
    label = "errors"
    warning = "0"
    critical = "20"
    remote = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-f", "--file", metavar="PATH",
                            help="log file (default [Log] Log_Dest)")
        parser.add_argument("--max-read", type=int, default=256, metavar="MB",
                            help="read at most this much per run; the rest waits for the "
                                 "next run (default 256)")

    def probe(self, ctx: Context) -> Reading:
        path = Path(ctx.args.file) if ctx.args.file else self._configured(ctx)
        try:
            fh = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise TargetDown(f"{path} does not exist: nothing is logging there") from None
        except OSError as exc:
            raise PluginError(f"cannot open {path}: {exc.strerror}") from None
        with fh:
            st = os.fstat(fh.fileno())
            subject = str(path.resolve())
            prev = load_state(ctx, subject)
            if prev is None:
                save_state(ctx, subject, {"inode": st.st_ino, "offset": st.st_size})
                return Reading(0, f"baseline set at {st.st_size} bytes of {path}; "
                               "new errors counted from the next run on",
                               perf=False, judge=False)
            offset = int(prev.get("offset", 0))
            rotated = prev.get("inode") != st.st_ino or st.st_size < offset
            if rotated:
                offset = 0
            count, last, offset, more = _scan(fh, offset, ctx.args.max_read * CHUNK)
            save_state(ctx, subject, {"inode": st.st_ino, "offset": offset})
        text = f"{count} new error lines in {path.name}"
        if rotated:
            text += " (log rotated, read from its start)"
        if more:
            text += " (more to read next run)"
        if last:
            text += f"; last: {last}"
        return Reading(count, text, min=0, extra=[Perfdata("read_offset", offset, "B", min=0)])

    @staticmethod
    def _configured(ctx: Context) -> Path:
        dest = ctx.option("Log", "Log_Dest")
        if str(dest).startswith("syslog:"):
            raise PluginError("[Log] Log_Dest is syslog; give the file with -f")
        return ctx.config().path("Log", "Log_Dest")


def _scan(fh: object, offset: int, budget: int) -> tuple[int, str, int, bool]:
    """(error lines, the last one, new offset, stopped early) from ``offset``; whole lines only."""
    import io

    assert isinstance(fh, io.BufferedReader)
    fh.seek(offset)
    count, last, pending = 0, b"", b""
    read = 0
    while read < budget:
        chunk = fh.read(min(CHUNK, budget - read))
        if not chunk:
            break
        read += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()  # a line still being written stays for the next run
        for line in lines:
            if _LEVEL.match(line):
                count += 1
                last = line
    more = read >= budget
    new_offset = offset + read - len(pending)
    return count, last.decode(errors="replace")[:160], new_offset, more


PLUGIN = LogErrors

if __name__ == "__main__":
    sys.exit(LogErrors.main())
