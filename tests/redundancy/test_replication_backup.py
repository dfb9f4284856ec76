"""Re-seed with mariabackup: stream, prepare, swap the replica's datadir, restart it."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
from pathlib import Path

import pytest

from tests.redundancy.replication_pair import Pair, Writer, wipe_datadir
from vigil.cli import main

pytestmark = pytest.mark.integration  # a throw-away MariaDB pair or server


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


def test_replica_server_down_rebuilt_with_backup(pair: Pair,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The replica's server is down and its datadir gone: auto rebuilds it with mariabackup."""
    pair.replica.stop()
    shutil.rmtree(pair.replica.datadir)
    conf = pair.conf(Replica_Datadir=str(pair.replica.datadir),
                     Replica_Start_Command=control_commands(pair), Connect_Timeout_sec="1")
    try:
        with Writer(pair.master) as writer:
            rc = main(["-c", str(conf), "replication", "repair"])
            out, err = capsys.readouterr()
        assert rc == 0, out + err
        assert "diagnosis: replica-down" in out and "method: backup" in out
        assert writer.rows > 0
        pair.assert_equal()
    finally:
        kill_by_pidfile(pair.replica.base / "mysqld.pid")


def test_new_datadir_that_does_not_start_is_rolled_back(
        pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    next_id = pair.master.execute("SELECT MAX(id) + 1 FROM app.t")[0][0]
    pair.on_replica_unlogged("INSERT INTO app.t (id, v, n) VALUES (%s, 'keep-me', 1)",
                             (next_id,))
    datadir = pair.replica.datadir
    script = pair.base / "start-picky.sh"
    # an init script that fails on the freshly restored datadir (as a bad my.cnf would)
    script.write_text(f"#!/bin/sh\nif [ -f {datadir}/xtrabackup_info ]; then\n"
                      "  echo 'mariadbd: cannot start' >&2; exit 1\nfi\n"
                      + "setsid " + shlex.join(pair.replica.args())
                      + " </dev/null >/dev/null 2>&1 &\n")
    script.chmod(0o755)
    conf = pair.conf(Replica_Datadir=str(datadir), Replica_Start_Command=str(script))
    try:
        rc = main(["-c", str(conf), "replication", "repair", "--method", "backup"])
        out, err = capsys.readouterr()
        assert rc == 1
        assert "did not start" in err and "old datadir is back in place" in err
        # the old replica is back, running, with its own rows
        assert pair.replica.execute("SELECT v FROM app.t WHERE id = %s",
                                    (next_id,)) == [("keep-me",)]
        assert list(pair.replica.base.glob("data.failed-*"))
    finally:
        kill_by_pidfile(pair.replica.base / "mysqld.pid")


def test_failed_backup_names_its_kept_log(pair: Pair) -> None:
    """The master dies as mariabackup starts: the error quotes mariabackup's
    own lines and names its whole log, which is kept for the operator."""
    from redundancy.replication.errors import SnapshotFailed
    from redundancy.replication.repair import Repair, RepairOptions
    from redundancy.replication.server import params_from_config
    from vigil import config

    wipe_datadir(pair.replica)
    conf = pair.conf(Replica_Datadir=str(pair.replica.datadir),
                     Replica_Start_Command=control_commands(pair), Method="backup")
    cfg = config.load(conf, sections=("Replication", "Site"))

    def report(line: str) -> None:
        if line.startswith("re-seed with mariabackup"):
            pair.master.kill()

    repair = Repair(params_from_config(cfg), RepairOptions.from_config(cfg), report)
    try:
        with pytest.raises(SnapshotFailed, match="mariabackup --backup failed") as failed:
            repair.run()
        message = str(failed.value)
        log_path = Path(message.rsplit("its whole log: ", 1)[1].rstrip(")"))
        assert log_path.name.endswith(".mariabackup.log") and log_path.stat().st_size > 0
        assert message.split("): ", 1)[1].split(" (its whole log")[0] != "(empty log)"
        # the staged copy is gone; only the log is left to read
        assert not [p for p in log_path.parent.glob(".*vigil-reseed-*")
                    if not p.name.endswith(".mariabackup.log")]
    finally:
        pair.master.start()
        kill_by_pidfile(pair.replica.base / "mysqld.pid")
