"""One repair at a time: a file lock on this machine and a named lock on the replica.

The file lock stops two ``vigil replication repair`` runs on this machine;
``GET_LOCK`` on the replica stops two machines (or two configs) repairing the
same replica. Both are released when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from redundancy.replication.errors import RepairBusy, ReplicationError
from redundancy.replication.server import Server
from vigil.pidlock import LockError, LockHeld, PidLock

SERVER_LOCK_NAME = "vigil_replication_repair"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """The project's pid-lock (:mod:`vigil.pidlock`) with the repair's own errors."""
    lock = PidLock(path, what="replication repair")
    try:
        lock.acquire()
    except LockHeld as exc:
        holder = f"pid {exc.pid}" if exc.pid else "unknown"
        raise RepairBusy(f"another replication repair is running ({holder}; "
                         f"lock {path}); wait for it to finish") from None
    except LockError as exc:
        raise ReplicationError(str(exc)) from exc
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def server_lock(replica: Server) -> Iterator[None]:
    """``GET_LOCK`` held on its own connection for as long as the block runs."""
    got = replica.scalar("SELECT GET_LOCK(%s, 0)", (SERVER_LOCK_NAME,))
    if got != 1:
        holder = replica.scalar("SELECT IS_USED_LOCK(%s)", (SERVER_LOCK_NAME,))
        raise RepairBusy(f"another replication repair is running against replica "
                         f"{replica.params.address} (connection id {holder})")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            replica.scalar("SELECT RELEASE_LOCK(%s)", (SERVER_LOCK_NAME,))
