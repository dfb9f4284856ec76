"""The repair plan: lock, look, refuse if unsafe, fix the least disruptive way, verify.

``Repair.run()`` is what ``vigil replication repair`` calls. Every step is
reported through ``report`` (progress) and every statement through the
``SqlLog`` (``-v``). In a dry run nothing is changed: reads run, changes and
external commands are printed only.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redundancy.replication import backup as backup_mod
from redundancy.replication import reseed, rowfix
from redundancy.replication.diagnose import Diagnosis, Fault, check_safe_target, diagnose
from redundancy.replication.errors import (
    AccessDenied,
    ReplicationError,
    ServerUnavailable,
    SnapshotFailed,
    UnsafeTarget,
    VerifyFailed,
)
from redundancy.replication.lock import file_lock, server_lock
from redundancy.replication.server import PairParams, Server, SqlLog
from redundancy.replication.status import ReplicaStatus, read_status
from redundancy.replication.verify import VerifyResult, verify
from vigil import statefile
from vigil.config import Secret

log = logging.getLogger(__name__)
Report = Callable[[str], None]
METHODS = ("auto", "skip-row", "dump", "backup")
RESEED_FAULTS = {Fault.PURGED_BINLOGS, Fault.NOT_CONFIGURED, Fault.INCOMPLETE}


@dataclass
class RepairOptions:
    method: str = "auto"
    dry_run: bool = False
    repoint: bool = False
    databases: list[str] = field(default_factory=list)
    heartbeat_table: str = "vigil.heartbeat"
    catch_up_timeout: float = 600.0
    max_row_fixes: int = 20
    disk_reserve: int = 512 << 20
    backup_threshold: int = 2048 << 20
    lock_file: Path = Path("/var/lib/vigil/replication-repair.lock")
    state_file: Path = Path("/var/lib/vigil/replication-repair.json")
    replication_user: str = "repl"
    replication_password: Secret = field(default_factory=lambda: Secret(""))
    replica_datadir: str = ""
    start_command: str = ""
    stop_command: str = ""
    work_dir: str = ""
    keep_old_datadir: bool = False
    checksums: bool = True

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> RepairOptions:
        s = "Replication"
        state_dir = cfg.path("Site", "State_Dir")
        lock = cfg.get(s, "Lock_File")
        opts = cls(
            method=cfg.get(s, "Method"),
            databases=[d.strip() for d in cfg.get(s, "Databases").split(",") if d.strip()],
            heartbeat_table=cfg.get(s, "Heartbeat_Table"),
            catch_up_timeout=float(cfg.get(s, "Catch_Up_Timeout_sec")),
            max_row_fixes=cfg.get(s, "Max_Row_Fixes"),
            disk_reserve=cfg.get(s, "Disk_Reserve_MB") << 20,
            backup_threshold=cfg.get(s, "Backup_Threshold_MB") << 20,
            lock_file=Path(lock) if lock else state_dir / "replication-repair.lock",
            state_file=state_dir / "replication-repair.json",
            replication_user=cfg.get(s, "Replication_User"),
            replication_password=cfg.get(s, "Replication_Password"),
            replica_datadir=cfg.get(s, "Replica_Datadir"),
            start_command=cfg.get(s, "Replica_Start_Command"),
            stop_command=cfg.get(s, "Replica_Stop_Command"),
            work_dir=cfg.get(s, "Work_Dir"),
            keep_old_datadir=cfg.get(s, "Keep_Old_Datadir"),
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(opts, k, v)
        return opts

    @property
    def backup_configured(self) -> bool:
        return bool(self.replica_datadir and self.start_command)


@dataclass
class RepairOutcome:
    fault: Fault
    summary: str
    method: str | None
    actions: list[str] = field(default_factory=list)
    verified: VerifyResult | None = None
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.actions) and not self.dry_run


def read_incomplete(state_file: Path, replica: str) -> str | None:
    try:
        state = statefile.read_json(state_file, default={}) or {}
    except statefile.CorruptStateError:
        return "state file unreadable"
    entry = state.get(replica) or {}
    if entry.get("state") == "reseeding":
        return f"{entry.get('method')} re-seed started {entry.get('started')}"
    return None


class Repair:
    def __init__(self, pair: PairParams, opts: RepairOptions, report: Report,
                 sql_log: SqlLog | None = None) -> None:
        if opts.method not in METHODS:
            raise ReplicationError(f"unknown method {opts.method!r}; use {', '.join(METHODS)}")
        self.pair = pair
        self.opts = opts
        self.report = report
        self.sql_log = sql_log or SqlLog()
        self.master = Server(pair.master, self.sql_log, opts.dry_run)
        self.replica = Server(pair.replica, self.sql_log, opts.dry_run)
        self.actions: list[str] = []
        self._old_datadir: Path | None = None      # kept until verification passes

    # ------------------------------------------------------------------ main
    def run(self) -> RepairOutcome:
        with file_lock(self.opts.lock_file):
            try:
                self.master.connect()
            except ServerUnavailable as exc:
                raise ServerUnavailable(f"cannot reach the master: {exc}") from exc
            try:
                self.replica.connect()
            except AccessDenied as exc:
                raise AccessDenied(f"cannot log into the replica: {exc}") from exc
            except ServerUnavailable as exc:
                if self.opts.method in ("auto", "backup") and self.opts.backup_configured:
                    try:
                        return self._run_replica_down(exc)
                    finally:
                        self.master.close()
                hint = ("" if self.opts.backup_configured else
                        "; a replica whose server cannot start can be rebuilt with the backup "
                        "method (set Replica_Datadir and Replica_Start_Command)")
                raise ServerUnavailable(f"cannot reach the replica: {exc}{hint}") from exc
            locker = Server(self.pair.replica.with_(label="replica-lock"), SqlLog())
            try:
                with locker, server_lock(locker):
                    return self._run_locked()
            finally:
                self.master.close()
                self.replica.close()

    def _run_locked(self) -> RepairOutcome:
        self.report(f"checking master {self.pair.master.address} and replica "
                    f"{self.pair.replica.address}")
        st = read_status(self.replica, self.master, self.opts.heartbeat_table)
        m_ident = self.master.query(self.master.sql("identity"))[0]
        r_ident = self.replica.query(self.replica.sql("identity"))[0]
        if not int(m_ident["@@log_bin"]):
            raise ReplicationError(f"the master {self.pair.master.address} has log_bin OFF: "
                                   "it cannot be replicated from")
        check_safe_target(st, m_ident, r_ident, (self.pair.master.host, self.pair.master.port),
                          self.opts.repoint)
        incomplete = read_incomplete(self.opts.state_file, self.pair.replica.address)
        diag = diagnose(st, incomplete)
        self.report(f"diagnosis: {diag.fault.value}: {diag.summary}")
        for note in diag.notes:
            self.report(f"note: {note}")
        method = self._choose(diag, st)
        outcome = RepairOutcome(diag.fault, diag.summary, method, self.actions,
                                dry_run=self.opts.dry_run)
        if method is None:
            self.report("nothing to repair")
            return outcome
        self.report(f"method: {method}" + (" (dry run: nothing will be changed)"
                                           if self.opts.dry_run else ""))
        try:
            try:
                outcome.verified = self._apply(method, diag, st)
                if self.opts.dry_run:
                    return outcome
            except (rowfix.RowFixImpossible, VerifyFailed) as exc:
                if self.opts.method != "auto" or method != "skip-row" or self.opts.dry_run:
                    raise
                self.report(f"row fix did not restore replication ({exc}); re-seeding instead")
                self.actions.append(f"row fix abandoned: {exc}")
                method = outcome.method = self._reseed_method()
                outcome.verified = self._apply(method, diag, st)
        except BaseException as exc:
            self._set_state("failed", method, str(exc))
            raise
        self._set_state("done", method)
        return outcome

    def _run_replica_down(self, why: ServerUnavailable) -> RepairOutcome:
        """The replica's server does not answer: rebuild its datadir with mariabackup."""
        self.report(f"the replica does not answer ({why})")
        m_ident = self.master.query(self.master.sql("identity"))[0]
        m_datadir = Path(str(m_ident["@@datadir"])).resolve()
        r_datadir = Path(self.opts.replica_datadir).resolve()
        if m_datadir == r_datadir or r_datadir in m_datadir.parents:
            raise UnsafeTarget(f"[Replication] Replica_Datadir {r_datadir} is the master's "
                               "datadir: refusing")
        if (self.pair.master.port == self.pair.replica.port
                and self.pair.master.host == self.pair.replica.host):
            raise UnsafeTarget("[Replication] Replica_Host/Port is the master's address")
        summary = "the replica's server is down; its datadir is rebuilt from the master"
        self.report(f"diagnosis: {Fault.REPLICA_DOWN.value}: {summary}")
        self.report("method: backup" + (" (dry run: nothing will be changed)"
                                        if self.opts.dry_run else ""))
        outcome = RepairOutcome(Fault.REPLICA_DOWN, summary, "backup", self.actions,
                                dry_run=self.opts.dry_run)
        try:
            self._reseed_backup(None)
            if self.opts.dry_run:
                return outcome
            dbs = reseed.databases(self.master, self.opts.databases)
            outcome.verified = verify(self.master, self.replica, dbs,
                                      self.opts.catch_up_timeout, self.report,
                                      self.opts.checksums)
            self.actions.append(f"verified: caught up to {outcome.verified.gtid_pos}, "
                                f"{outcome.verified.tables} table checksum(s) equal")
            self.cleanup_after_verify()
        except BaseException as exc:
            self._set_state("failed", "backup", str(exc))
            raise
        finally:
            self.replica.close()
        self._set_state("done", "backup")
        return outcome

    def _reseed_method(self) -> str:
        if self.opts.backup_configured:
            dbs = reseed.databases(self.master, self.opts.databases)
            if reseed.data_bytes(self.master, dbs) > self.opts.backup_threshold:
                return "backup"
        return "dump"

    def _choose(self, diag: Diagnosis, st: ReplicaStatus) -> str | None:
        asked = self.opts.method
        if asked == "auto":
            if diag.fault == Fault.IO_ERROR:
                raise ReplicationError(diag.summary)
            if diag.method == "dump":
                return self._reseed_method()
            if diag.fault == Fault.HEALTHY and st.errant_gtids:
                return "skip-row"
            return diag.method
        if asked == "skip-row" and diag.fault in RESEED_FAULTS | {Fault.SQL_ERROR}:
            raise ReplicationError(f"--method skip-row cannot fix {diag.fault.value}: "
                                   "use --method dump (or backup)")
        if asked == "skip-row" and diag.fault == Fault.HEALTHY and not st.errant_gtids:
            return None
        if asked == "backup" and not self.opts.backup_configured:
            raise ReplicationError("--method backup needs [Replication] Replica_Datadir and "
                                   "Replica_Start_Command")
        return asked

    def _apply(self, method: str, diag: Diagnosis, st: ReplicaStatus) -> VerifyResult | None:
        if method == "skip-row":
            self._row_fixes()
        elif method == "dump":
            self._reseed_dump(st)
        else:
            self._reseed_backup(st)
        if self.opts.dry_run:
            self.report("dry run: stopping before verification")
            return None
        dbs = reseed.databases(self.master, self.opts.databases)
        result = verify(self.master, self.replica, dbs, self.opts.catch_up_timeout,
                        self.report, self.opts.checksums)
        self.actions.append(f"verified: threads running, caught up to {result.gtid_pos}, "
                            f"{result.tables} table checksum(s) equal")
        self.cleanup_after_verify()
        return result

    # ------------------------------------------------------------- row fixes
    def _row_fixes(self) -> None:
        for attempt in range(1, self.opts.max_row_fixes + 1):
            st = read_status(self.replica, self.master, self.opts.heartbeat_table)
            diag = diagnose(st)
            if diag.fault == Fault.HEALTHY and not st.errant_gtids:
                return
            self.report(f"fix {attempt}: {diag.fault.value}: {diag.summary}")
            if diag.fault == Fault.ROW_CONFLICT and diag.conflict is not None:
                done = rowfix.fix_conflict(self.replica, self.master, diag.conflict,
                                           st.relay_master_log_file, st.exec_master_log_pos,
                                           self.report)
            elif diag.fault == Fault.ERRANT or (diag.fault == Fault.HEALTHY and st.errant_gtids):
                done = rowfix.forget_errant(self.replica, st.errant_gtids, self.report)
            elif diag.fault == Fault.STOPPED:
                done = "started replication"
            else:
                raise rowfix.RowFixImpossible(diag.summary)
            self.actions.append(done)
            self.report(f"  {done}")
            self.replica.execute(self.replica.sql("start_replica"))
            if self.opts.dry_run:
                self.report("dry run: later conflicts, if any, show only after this fix")
                return
            self._settle()
        raise rowfix.RowFixImpossible(f"still failing after {self.opts.max_row_fixes} row "
                                      "fixes ([Replication] Max_Row_Fixes)")

    def _settle(self, seconds: float = 3.0) -> None:
        """Give the restarted threads a moment: caught up, or stopped on the next error."""
        target = self.master.scalar("SELECT @@GLOBAL.gtid_binlog_pos")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.replica.scalar(self.replica.sql("gtid_wait"), (target, 0.5)) == 0:
                return
            rows = self.replica.query(self.replica.sql("replica_status"))
            if rows and rows[0].get("Slave_SQL_Running") != "Yes":
                return

    # ------------------------------------------------------------- re-seeds
    def _prepare_replica(self, st: ReplicaStatus) -> None:
        """Stop replication, point it at the master, forget the replica's own binlog."""
        r = self.replica
        if (not st.configured or self.opts.repoint) and not self.opts.replication_password:
            raise ReplicationError(
                "the replica has no replication settings; set [Replication] "
                "Replication_User and Replication_Password (the account the replica uses "
                "on the master)")
        r.execute(r.sql("stop_replica"))
        r.execute(r.sql("reset_replica"))
        if not st.configured or self.opts.repoint:
            r.execute(r.sql("change_master_gtid"),
                      (self.pair.master.host, self.pair.master.port,
                       self.opts.replication_user, self.opts.replication_password))
        if r.query(r.sql("replica_hosts")):
            self.report("  note: servers replicate from this replica; keeping its binlog")
        else:
            r.execute(r.sql("reset_binlog"))
        r.execute(r.sql("set_gtid_slave_pos"), ("",))

    def _reseed_dump(self, st: ReplicaStatus) -> None:
        dbs = reseed.databases(self.master, self.opts.databases)
        if not dbs:
            raise ReplicationError("the master has no database to copy ([Replication] "
                                   "Databases)")
        size = reseed.data_bytes(self.master, dbs)
        self.report(f"re-seed with mariadb-dump: {', '.join(dbs)} ({size / 2**20:.1f} MB on "
                    "the master), piped into the replica while the master keeps writing")
        datadir = reseed.local_datadir(self.replica)
        if datadir:
            reseed.check_disk(datadir, int(size * 1.2), self.opts.disk_reserve,
                              "the replica's copy")
        else:
            self.report("  note: the replica's datadir is not on this machine; disk not checked")
        self._prepare_replica(st)
        if self.opts.dry_run:
            self.report("  would run: mariadb-dump --single-transaction --master-data=1 --gtid "
                        f"--databases {' '.join(dbs)} | mariadb (replica); then START SLAVE")
            return
        self._set_state("reseeding", "dump")
        result = reseed.pipe_dump(self.master, self.replica, dbs, self.report)
        self.replica.close()
        self.replica.connect()
        disabled = reseed.disable_events(self.replica, dbs)
        if disabled:
            self.report(f"  events {', '.join(disabled)} set DISABLE ON SLAVE on the replica")
        pos = self.replica.scalar("SELECT @@GLOBAL.gtid_slave_pos")
        if pos != result.gtid_pos:
            self.replica.execute(self.replica.sql("set_gtid_slave_pos"), (result.gtid_pos,))
        self.replica.execute(self.replica.sql("change_master_use_gtid"))
        self.replica.execute(self.replica.sql("start_replica"))
        self.actions.append(f"re-seeded {', '.join(dbs)} with mariadb-dump "
                            f"({result.bytes_copied / 2**20:.1f} MB in {result.seconds:.1f} s) "
                            f"at GTID {result.gtid_pos}")

    def _reseed_backup(self, st: ReplicaStatus | None) -> None:
        """``st`` None: the replica's server is down (nothing to ask it)."""
        from redundancy.replication.backup import ReplicaServerControl

        o = self.opts
        datadir = Path(o.replica_datadir)
        m_datadir = str(self.master.scalar("SELECT @@datadir"))
        if not Path(m_datadir).is_dir():
            raise ReplicationError(f"the master's datadir {m_datadir} is not on this machine: "
                                   "the backup method runs mariabackup next to the master")
        r_datadir = self.replica.scalar("SELECT @@datadir") if st is not None else None
        if r_datadir and Path(r_datadir).resolve() != datadir.resolve():
            raise ReplicationError(f"[Replication] Replica_Datadir is {datadir} but the "
                                   f"replica runs on {r_datadir}")
        work = Path(o.work_dir) if o.work_dir else datadir.parent
        size = backup_mod.directory_bytes(Path(m_datadir), skip_prefix="mysql-bin")
        self.report(f"re-seed with mariabackup: {size / 2**20:.1f} MB from {m_datadir}, "
                    f"staged in {work}")
        reseed.check_disk(str(work), size, o.disk_reserve, "the backup")
        if o.dry_run:
            self.report("  would run: mariabackup --backup --stream=xbstream | mbstream -x; "
                        f"mariabackup --prepare; stop the replica; swap {datadir}; start it; "
                        "SET GLOBAL gtid_slave_pos; CHANGE MASTER TO ...; START SLAVE")
            return
        creds = (o.replication_user, o.replication_password)
        if not o.replication_password:
            old = backup_mod.read_master_info(datadir)
            if old is None:
                raise ReplicationError("set [Replication] Replication_User and "
                                       "Replication_Password: the new datadir has no "
                                       "replication settings")
            creds = (old[0], Secret(old[1]))
        staged = work / time.strftime(f".{datadir.name}.vigil-reseed-%Y%m%d-%H%M%S")
        self._set_state("reseeding", "backup")
        try:
            result = backup_mod.stream_backup(self.master, m_datadir, staged, self.report)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        control = ReplicaServerControl(self.pair.replica, o.start_command, o.stop_command,
                                       report=self.report)
        self.replica.close()
        old_dir = backup_mod.swap_datadir(datadir, staged, control, self.report)
        self.replica.connect()
        r = self.replica
        r.execute(r.sql("stop_replica"))
        r.execute(r.sql("reset_replica"))
        r.execute(r.sql("set_gtid_slave_pos"), (result.gtid_pos,))
        r.execute(r.sql("change_master_gtid"),
                  (self.pair.master.host, self.pair.master.port, creds[0], creds[1]))
        r.execute(r.sql("start_replica"))
        self.actions.append(f"re-seeded the replica's datadir with mariabackup "
                            f"({result.bytes_copied / 2**20:.1f} MB in {result.seconds:.1f} s) "
                            f"at GTID {result.gtid_pos}")
        self._old_datadir = old_dir

    def cleanup_after_verify(self) -> None:
        old = self._old_datadir
        if old is not None and not self.opts.keep_old_datadir:
            shutil.rmtree(old, ignore_errors=True)

    # ---------------------------------------------------------------- state
    def _set_state(self, state: str, method: str, error: str | None = None) -> None:
        if self.opts.dry_run:
            return
        with contextlib.suppress(OSError, statefile.CorruptStateError):
            self.opts.state_file.parent.mkdir(parents=True, exist_ok=True)
            data = statefile.read_json(self.opts.state_file, default={}) or {}
            entry = data.get(self.pair.replica.address) or {}
            if state == "reseeding":
                entry = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
            elif state == "failed" and entry.get("state") == "reseeding":
                state = "reseeding"    # still incomplete: the next run must re-seed
            entry.update(state=state, method=method, time=time.time(), error=error)
            data[self.pair.replica.address] = entry
            statefile.write_json(self.opts.state_file, data)


__all__ = ["Repair", "RepairOptions", "RepairOutcome", "SnapshotFailed"]
