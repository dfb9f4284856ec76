"""Run one check plugin with a hard timeout and turn what it did into a result.

The plugin runs in its own process group (session) so a timeout kills it and
everything it started. Its output is read with a cap: a plugin that prints
more than ``max_output`` bytes is stopped at once. Whatever the plugin does
becomes exactly one :class:`Outcome`:

==========================  =========  ======================================
plugin                      status     output
==========================  =========  ======================================
exits 0..3, prints a line   its code   its first line
runs past its timeout       CRITICAL   ``timed out after N s``
prints nothing              UNKNOWN    ``printed nothing (exit code N)``
exits outside 0..3 / signal UNKNOWN    ``exited with code N: <stderr>``
prints non-text             UNKNOWN    ``printed garbage (not UTF-8 text)``
prints too much             UNKNOWN    ``printed more than N bytes``
cannot be started           UNKNOWN    ``cannot run <argv0>: <why>``
==========================  =========  ======================================

Vigil's own plugins (``vigil-check NAME``, ``check_vigil_NAME``) run as a fork
of the :class:`~monitor.zygote.Zygote` when one is given, so no Python starts
per check; the timeout, output cap and group kill are the same code either
way. If the zygote cannot take the check, it runs as a subprocess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.zygote import Zygote, ZygoteChild, ZygoteError, plugin_argv
from vigil.service_state import ServiceState

log = logging.getLogger(__name__)

CRITICAL, UNKNOWN = ServiceState.CRITICAL, ServiceState.UNKNOWN

# NSCA v3 carries at most 4095 bytes of output; Nagios keeps 8 KiB. Keep well inside.
OUTPUT_LIMIT_BYTES = 2048
_KILL_GRACE_SEC = 0.5
_READ_CHUNK = 65536


class ProcessTracker:
    """The plugins running now, so that a stopping scheduler can kill them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pids: set[int] = set()
        self.stopping = False

    def add(self, pid: int) -> None:
        with self._lock:
            self._pids.add(pid)
            stopping = self.stopping
        if stopping:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def running(self) -> set[int]:
        """The pids (process groups) of the plugins running now."""
        with self._lock:
            return set(self._pids)

    def discard(self, pid: int) -> None:
        with self._lock:
            self._pids.discard(pid)

    def kill_all(self) -> int:
        with self._lock:
            self.stopping = True
            pids = list(self._pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        return len(pids)


@dataclass(frozen=True)
class Outcome:
    status: ServiceState
    output: str
    duration: float
    finished_at: float  # wall clock, for the result's timestamp
    cpu_sec: float | None = None  # the plugin's own CPU, when known (a zygote child)

    @property
    def state(self) -> str:
        return self.status.text


def resolve_program(argv0: str) -> str | None:
    """Where ``argv0`` is: a path as given, else this Python's bin folder, else PATH.

    Under supervisor PATH may not hold the virtualenv's ``bin``, where
    ``vigil-check`` lives, so that folder is looked at first.
    """
    if os.sep in argv0:
        return argv0 if os.access(argv0, os.X_OK) and Path(argv0).is_file() else None
    local = Path(sys.executable).parent / argv0
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(argv0)


def clean_line(text: str) -> str:
    """One line as NSCA and Nagios can carry it."""
    line = text.replace("\r", " ").replace("\t", " ").replace("\0", " ").strip()
    data = line.encode("utf-8")
    if len(data) > OUTPUT_LIMIT_BYTES:
        line = data[:OUTPUT_LIMIT_BYTES - 3].decode("utf-8", "ignore") + "..."
    return line


def _kill_group(proc: Any) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after a grace."""
    for sig, grace in ((signal.SIGTERM, _KILL_GRACE_SEC), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; others in its group may not be.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def run_plugin(argv: Sequence[str], timeout: float, *, max_output: int = 65536,
               env: Mapping[str, str] | None = None, name: str = "",
               tracker: ProcessTracker | None = None, zygote: Zygote | None = None
               ) -> Outcome:
    """Run ``argv`` to completion or until ``timeout``; never raises for the plugin's faults."""
    label = name or (argv[0] if argv else "?")
    start = time.monotonic()

    def done(status: ServiceState, output: str) -> Outcome:
        return Outcome(status, clean_line(output), time.monotonic() - start, time.time())

    if not argv:
        return done(UNKNOWN, f"UNKNOWN - {label} has an empty command")
    own = plugin_argv(argv) if zygote is not None else None
    if zygote is not None and own is not None:
        try:
            child = zygote.spawn(own, env)
        except ZygoteError as exc:
            log.warning("check %s: plugin worker unavailable (%s), running it as a "
                        "subprocess", label, exc)
        else:
            return _tracked(child, label, timeout, max_output, start, done, tracker)
    program = resolve_program(argv[0])
    if program is None:
        log.error("check %s: plugin %s not found", label, argv[0])
        return done(UNKNOWN, f"UNKNOWN - plugin not found: {argv[0]}")
    try:
        proc = subprocess.Popen(
            [program, *argv[1:]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
            env=dict(env) if env is not None else None)
    except OSError as exc:
        log.error("check %s: cannot run %s: %s", label, program, exc)
        return done(UNKNOWN, f"UNKNOWN - cannot run {argv[0]}: {exc.strerror or exc}")
    return _tracked(proc, label, timeout, max_output, start, done, tracker)


def _tracked(proc: Any, label: str, timeout: float, max_output: int, start: float,
             done: Callable[[ServiceState, str], Outcome],
             tracker: ProcessTracker | None) -> Outcome:
    if tracker is not None:
        tracker.add(proc.pid)
    try:
        return _collect(proc, label, timeout, max_output, start, done)
    finally:
        if tracker is not None:
            tracker.discard(proc.pid)


def _collect(proc: Any, label: str, timeout: float, max_output: int,
             start: float, done: Callable[[ServiceState, str], Outcome]) -> Outcome:

    out = bytearray()
    err = bytearray()
    too_much = False
    timed_out = False
    deadline = start + timeout
    assert proc.stdout is not None and proc.stderr is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, _READ_CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf: bytearray = key.data
                buf += chunk
                if len(buf) > max_output:
                    too_much = True
            if too_much:
                break
    if timed_out or too_much:
        _kill_group(proc)
    else:
        left = max(0.0, deadline - time.monotonic())
        try:
            proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            # Closed its pipes but kept running.
            timed_out = True
            _kill_group(proc)
    proc.stdout.close()
    proc.stderr.close()
    # A plugin's own children are its business, but not past its end.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)

    if timed_out:
        log.warning("check %s: timed out after %g s, process group killed", label, timeout)
        return done(CRITICAL, f"CRITICAL - {label} timed out after {timeout:g} s")
    if too_much:
        log.warning("check %s: printed more than %d bytes, stopped", label, max_output)
        return done(UNKNOWN, f"UNKNOWN - {label} printed more than {max_output} bytes "
                             "(output cut, plugin stopped)")
    if isinstance(proc, ZygoteChild):
        if proc.error:
            # A zygote child whose worker died: what it printed is not to be trusted whole.
            return done(UNKNOWN, f"UNKNOWN - {label}: {proc.error}")
        rc = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        outcome = done(*judge(label, rc, bytes(out), bytes(err)))
        return dataclasses.replace(outcome, cpu_sec=proc.cpu_sec)
    return done(*judge(label, proc.returncode, bytes(out), bytes(err)))


def _last_line(data: bytes) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def judge(label: str, rc: int, out: bytes, err: bytes) -> tuple[ServiceState, str]:
    """Status and output line for a plugin that ended by itself (a pure function)."""

    def because(why: str) -> str:
        return f": {why}" if why else ""

    if rc < 0:
        try:
            signame = signal.Signals(-rc).name
        except ValueError:
            signame = str(-rc)
        log.warning("check %s: killed by %s", label, signame)
        return UNKNOWN, f"UNKNOWN - {label} killed by {signame}{because(_last_line(err))}"
    if rc not in tuple(ServiceState):
        log.warning("check %s: exited with code %d", label, rc)
        why = _last_line(err) or _last_line(out)
        return UNKNOWN, f"UNKNOWN - {label} exited with code {rc}{because(why)}"
    try:
        text_out = out.decode("utf-8")
    except UnicodeDecodeError:
        return UNKNOWN, f"UNKNOWN - {label} printed garbage (not UTF-8 text)"
    first = next((ln for ln in text_out.splitlines() if ln.strip()), "")
    if not first:
        log.warning("check %s: printed nothing (exit code %d)", label, rc)
        return UNKNOWN, (f"UNKNOWN - {label} printed nothing (exit code {rc})"
                         f"{because(_last_line(err))}")
    if sum(ch.isprintable() for ch in first) < len(first) * 0.9:
        return UNKNOWN, f"UNKNOWN - {label} printed garbage (control characters)"
    return ServiceState(rc), first
