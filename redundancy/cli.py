"""``vigil replication status|repair|heartbeat``.

Exit codes: 0 healthy / repaired, 1 not healthy / repair failed, 2 bad usage
or unsafe target, 3 a server is unreachable or refused the credentials.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from vigil.cli import EXIT_FAILED, EXIT_OK, CommandError

log = logging.getLogger(__name__)
SECTIONS = ("Replication", "Site", "Email", "Global")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("replication", help="MySQL/MariaDB replication status and repair",
                              description="Status and repair of the master/replica pair in "
                                          "[Replication].")
    sub = p.add_subparsers(dest="replication_command", metavar="ACTION")
    sub.required = True

    st = sub.add_parser("status", help="threads, errors, lag (GTID and heartbeat), errant GTIDs")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--replica", metavar="HOST:PORT",
                    help="another replica of the same master (e.g. the secondary site's "
                         "stand-by) instead of [Replication] Replica_Host/Replica_Port")
    st.add_argument("--alert", action="store_true",
                    help="send an alert when replication is not healthy (for cron)")
    st.set_defaults(func=cmd_status)

    rp = sub.add_parser("repair", help="diagnose and repair replication, then verify",
                        description="Diagnose, pick the least disruptive fix, apply it while "
                                    "the master keeps writing, then verify (threads, GTID "
                                    "position, CHECKSUM TABLE on both sides).")
    rp.add_argument("--method", choices=("auto", "skip-row", "dump", "backup"),
                    help="skip-row: fix the one conflicting row; dump: re-seed with "
                         "mariadb-dump; backup: re-seed with mariabackup (default: "
                         "[Replication] Method, normally auto)")
    rp.add_argument("--dry-run", action="store_true",
                    help="diagnose and print what would be done, change nothing")
    rp.add_argument("-v", "--verbose", dest="sub_verbose", action="count", default=0,
                    help="print every statement that changes something and every command "
                         "run (passwords masked); -vv adds every status query")
    rp.add_argument("--replica", metavar="HOST:PORT", help="repair this replica instead")
    rp.add_argument("--repoint", action="store_true",
                    help="re-seed a replica that follows another master from the configured one")
    rp.add_argument("--no-checksums", action="store_true",
                    help="verify threads and GTID position only (huge databases)")
    rp.set_defaults(func=cmd_repair)

    hb = sub.add_parser("heartbeat", help="write the heartbeat row on the master in a loop")
    hb.add_argument("--interval", type=float, default=1.0, help="seconds between beats")
    hb.add_argument("--count", type=int, help="stop after this many beats (default: forever)")
    hb.set_defaults(func=cmd_heartbeat)

    from redundancy.site import cli as site_cli

    site_cli.register(subparsers)


def _config(args: argparse.Namespace) -> Any:
    from vigil import config

    return config.load(args.config, sections=SECTIONS)


def _fail(exc: Exception) -> CommandError:
    from redundancy.replication.errors import ReplicationError

    code = exc.exit_code if isinstance(exc, ReplicationError) else EXIT_FAILED
    return CommandError(str(exc), code)


def notify(cfg: Any, subject: str, body: str) -> None:
    """An alert through vigil.alerts; a log line when it is not available."""
    try:
        from vigil.alerts import send_alert
    except ImportError:
        log.warning("alert (vigil.alerts not available): %s: %s", subject, body)
        return
    try:
        send_alert(cfg, subject, body)
    except Exception as exc:  # an alert that cannot go out must not hide the repair's result
        log.warning("alert not sent (%s): %s", exc, subject)


def cmd_status(args: argparse.Namespace) -> int:
    from redundancy.replication.errors import ReplicationError
    from redundancy.replication.server import params_from_config
    from redundancy.replication.status import replica_status

    cfg = _config(args)
    try:
        pair = params_from_config(cfg, args.replica)
        st = replica_status(pair, cfg.get("Replication", "Heartbeat_Table"))
    except ReplicationError as exc:
        raise _fail(exc) from exc
    if args.json:
        print(json.dumps(st.to_json(), indent=2, sort_keys=True, default=str))
    else:
        print(format_status(st, pair.replica.address, pair.master.address))
    if not st.healthy and args.alert:
        notify(cfg, f"replication not healthy on {pair.replica.address}",
               "\n".join(st.problems()) + "\n\nRun: vigil replication repair --dry-run")
    return EXIT_OK if st.healthy else EXIT_FAILED


def format_status(st: Any, replica: str, master: str) -> str:
    def yn(b: bool) -> str:
        return "Yes" if b else "No"

    lines = [f"replica {replica} (server_id {st.replica_server_id}, read_only "
             f"{yn(bool(st.replica_read_only))}) of master {master}"]
    if not st.configured:
        lines.append("  replication: NOT CONFIGURED")
    else:
        lines += [
            f"  follows:     {st.master_host}:{st.master_port} (server_id "
            f"{st.master_server_id or '?'}), GTID mode {st.using_gtid or 'No'}",
            f"  IO thread:   {st.io_state or 'No'}"
            + (f"  error {st.io_errno}: {st.io_error}" if st.io_errno else ""),
            f"  SQL thread:  {yn(st.sql_running)}"
            + (f"  error {st.sql_errno}: {st.sql_error}" if st.sql_errno else ""),
        ]
    lag = "unknown (master not reachable)" if st.gtid_lag_transactions is None else \
        f"{st.gtid_lag_transactions} transaction(s)"
    lines += [
        f"  GTID:        replica {st.gtid_slave_pos or '-'}, master "
        f"{st.master_gtid_binlog_pos or '?'}; behind: {lag}",
        "  heartbeat:   " + ("no heartbeat" if st.heartbeat_lag_sec is None
                              else f"{st.heartbeat_lag_sec:.1f} s behind"),
        "  Seconds_Behind_Master: "
        + ("NULL" if st.seconds_behind is None else str(st.seconds_behind)),
        "  errant GTIDs: " + (",".join(st.errant_gtids) or "none"),
        "  => " + ("healthy" if st.healthy else "NOT HEALTHY: " + "; ".join(st.problems())),
    ]
    return "\n".join(lines)


def cmd_repair(args: argparse.Namespace) -> int:
    from redundancy.replication.errors import ReplicationError
    from redundancy.replication.repair import Repair, RepairOptions
    from redundancy.replication.server import SqlLog, params_from_config

    cfg = _config(args)
    verbose = (args.verbose or 0) + (args.sub_verbose or 0)

    def report(line: str) -> None:
        print(line, flush=True)

    sql_log = SqlLog(echo=(lambda s: print("  SQL " + s, flush=True)) if verbose else None,
                     reads=verbose > 1)
    try:
        pair = params_from_config(cfg, args.replica)
        opts = RepairOptions.from_config(cfg, method=args.method, dry_run=args.dry_run,
                                         repoint=args.repoint or None,
                                         checksums=False if args.no_checksums else None)
        repair = Repair(pair, opts, report, sql_log)
    except ReplicationError as exc:
        raise _fail(exc) from exc
    try:
        outcome = repair.run()
    except ReplicationError as exc:
        if not args.dry_run and type(exc).__name__ not in ("RepairBusy", "UnsafeTarget"):
            notify(cfg, f"replication repair FAILED on {pair.replica.address}",
                   f"{exc}\n\nActions taken before the failure:\n"
                   + ("\n".join(repair.actions) or "(none)"))
        raise _fail(exc) from exc
    except KeyboardInterrupt:
        print("interrupted: the replica may be left stopped; run the repair again",
              file=sys.stderr)
        raise
    if outcome.changed:
        notify(cfg, f"replication repaired on {pair.replica.address} ({outcome.method})",
               f"Fault: {outcome.fault.value}: {outcome.summary}\n\n" + "\n".join(outcome.actions))
        print("repaired: " + "; ".join(outcome.actions))
    return EXIT_OK


def cmd_heartbeat(args: argparse.Namespace) -> int:
    from redundancy.replication import heartbeat
    from redundancy.replication.errors import ReplicationError
    from redundancy.replication.server import Server, params_from_config

    cfg = _config(args)
    pair = params_from_config(cfg)
    try:
        with Server(pair.master) as master:
            heartbeat.run(master, cfg.get("Replication", "Heartbeat_Table"), args.interval,
                          args.count)
    except ReplicationError as exc:
        raise _fail(exc) from exc
    return EXIT_OK
