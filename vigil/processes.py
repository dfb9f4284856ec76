"""Whether a process id names a live process.

A leaf module: it imports nothing of the project. Pid files (radcheck's lock,
the NSCA spool's writer, the pidfile check plugin) and the tests all ask the
same question, so they ask it here.
"""

from __future__ import annotations

import os


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (R, S, Z, ...); None when there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:  # gone, or /proc hidden from us
        return None
    # the command name (field 2) is in parentheses and may itself hold ') '
    after = stat.rpartition(")")[2].split()
    return after[0] if after else None


def pid_alive(pid: int) -> bool:
    """True when `pid` runs; a zombie (exited, not yet reaped) counts as dead."""
    if pid <= 0:
        return False  # 0 and negatives name process groups, never one process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return proc_state(pid) not in ("Z", "X", None)
