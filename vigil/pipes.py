"""A reader that stops early (``vigil config options | head``) is not an error.

When stdout's reader goes away, writing raises ``BrokenPipeError``, and so
does the flush Python does at exit ("Exception ignored ..."). Entry points
catch it and call :func:`stdout_closed`, which points stdout at /dev/null so
nothing more can fail, and gives the shell's exit code for SIGPIPE. A leaf
module: imports nothing of Vigil.
"""

from __future__ import annotations

import contextlib
import os
import sys

EXIT_PIPE = 141  # 128 + SIGPIPE, what a C program killed by it reports to the shell


def stdout_closed() -> int:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_PIPE


def flush_stdout() -> None:
    """Flush now, inside the caller's ``except BrokenPipeError``, not at exit."""
    sys.stdout.flush()
