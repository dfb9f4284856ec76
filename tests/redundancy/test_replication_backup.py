"""Re-seed with mariabackup: stream, prepare, swap the replica's datadir, restart it."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
from pathlib import Path

import pytest
from replication_pair import Pair, Writer, wipe_datadir

from vigil.cli import main

pytestmark = pytest.mark.mariadb


def control_commands(pair: Pair) -> str:
    """A start script as an init system would have: mariadbd in the background."""
    script = pair.base / "start-replica.sh"
    script.write_text("#!/bin/sh\n" + "setsid " + shlex.join(pair.replica.args())
                      + " </dev/null >/dev/null 2>&1 &\n")
    script.chmod(0o755)
    return str(script)


def kill_by_pidfile(pidfile: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def test_wiped_replica_reseeded_with_backup(pair: Pair, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    wipe_datadir(pair.replica)
    old_marker = pair.replica.datadir / "old-datadir-marker"
    old_marker.write_text("x")
    conf = pair.conf(Replica_Datadir=str(pair.replica.datadir),
                     Replica_Start_Command=control_commands(pair))
    try:
        with Writer(pair.master) as writer:
            rc = main(["-c", str(conf), "replication", "repair", "--method", "backup", "-v"])
            out, err = capsys.readouterr()
        assert rc == 0, out + err
        assert "mariabackup" in out and "--defaults-extra-file=<0600 temp file>" in out
        assert "table(s) equal" in out
        assert writer.rows > 0
        assert not old_marker.exists()                     # the old datadir was replaced
        assert not list(pair.replica.base.glob("data.old-*"))  # removed after verification
        pair.assert_equal()
    finally:
        kill_by_pidfile(pair.replica.base / "mysqld.pid")
