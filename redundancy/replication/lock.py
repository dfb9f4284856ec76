"""One repair at a time: a file lock on this machine and a named lock on the replica.

The file lock stops two ``vigil replication repair`` runs on this machine;
``GET_LOCK`` on the replica stops two machines (or two configs) repairing the
same replica. Both are released when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from redundancy.replication.errors import RepairBusy
from redundancy.replication.server import Server

SERVER_LOCK_NAME = "vigil_replication_repair"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RepairBusy(f"another replication repair is running ({holder}; "
                             f"lock {path}); wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                  .encode(), 0)
        yield
    finally:
        os.close(fd)


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
