"""Servers started by tests end when the test process ends, however it ends.

Two mechanisms, because neither covers everything alone:

- ``die_with_parent`` (a ``preexec_fn``): the kernel sends SIGKILL to the
  child when the thread that started it dies (``PR_SET_PDEATHSIG``). It
  survives ``setsid`` and ``exec`` but not ``fork``, so a daemon that forks
  (``nagios4 -d``), a supervisord's programs or a nagios worker escape it.
- a session tag and a reaper: the test process puts a unique token in the
  ``VIGIL_TEST_SESSION`` environment variable, which every process it starts
  inherits (forks and daemons included). A small reaper process, in a session
  of its own, waits for the test process to end (a pidfd: exit, crash or
  ``kill -9``), then kills every process whose environment carries the token.

``tagged`` is also how a clean run is checked to leave nothing behind.
Run as ``python -m vigil.testing.reaper --watch PID --token TOKEN``.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

ENV = "VIGIL_TEST_SESSION"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``preexec_fn``: SIGKILL this child when the starting thread ends.

    Runs in the child between fork and exec. If the parent is already gone
    (it died before prctl took effect), the child ends itself at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getppid()
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent or parent == 1:
        os.kill(os.getpid(), signal.SIGKILL)


def new_token() -> str:
    return f"vigil-test-{uuid.uuid4().hex}"


def tag_environment(token: str) -> None:
    """Add ``token`` to this process's tag, so every process it starts inherits it.

    Tokens accumulate: a test session started inside another carries both, so
    the outer session's reaper and check see the inner one's servers too.
    """
    old = os.environ.get(ENV, "")
    os.environ[ENV] = f"{old} {token}".strip()


def tagged(token: str, exclude: set[int] | None = None) -> dict[int, str]:
    """Live processes carrying ``token``: pid -> command line."""
    skip = {os.getpid()} | (exclude or set())
    needle = f"{ENV}=".encode()
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for var in env.split(b"\0"):
            if var.startswith(needle) and token.encode() in var[len(needle):].split():
                found[int(entry)] = cmd
                break
    return found


def kill_tagged(token: str, timeout: float = 10.0,
                exclude: set[int] | None = None) -> dict[int, str]:
    """SIGKILL every process carrying ``token`` until none is left; what was killed."""
    killed: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = tagged(token, exclude)
        if not found:
            break
        for pid, cmd in found.items():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed[pid] = cmd
        time.sleep(0.05)  # the kernel tears them down; a forking parent may add more
    return killed


def start_reaper(token: str, watch: int | None = None) -> subprocess.Popen[bytes]:
    """The reaper for this process (or ``watch``); it outlives a ``kill -9`` of it."""
    env = dict(os.environ)
    # the reaper must not carry the token it reaps (it would kill itself)
    env[ENV] = " ".join(t for t in env.get(ENV, "").split() if t != token)
    return subprocess.Popen(
        [sys.executable, "-m", "vigil.testing.reaper", "--watch", str(watch or os.getpid()),
         "--token", token],
        env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        select.select([fd], [], [])  # readable when the process has ended
    finally:
        os.close(fd)


def main(argv: list[str] | None = None,
         wait: Callable[[int], None] = _wait_for_exit) -> int:
    ap = argparse.ArgumentParser(prog="python -m vigil.testing.reaper",
                                 description="Kill a test session's processes when it ends.")
    ap.add_argument("--watch", type=int, required=True, help="pid of the test process")
    ap.add_argument("--token", required=True, help=f"the session's tag in ${ENV}")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C of the test run is not for us
    wait(args.watch)
    killed = kill_tagged(args.token)
    if killed:
        print(f"vigil reaper: killed {len(killed)} process(es) left by test session "
              f"{args.watch}: " + "; ".join(f"{p} {c[:80]}" for p, c in sorted(killed.items())),
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
