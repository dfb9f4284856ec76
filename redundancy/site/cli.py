"""``vigil site status|standalone|failback|watchdog|witness``.

Exit codes: 0 done, 1 the operation failed (or, for status, the site is
stand-alone or has a backlog), 2 bad usage or configuration, 3 a database is
unreachable (for status: the backlog cannot be read).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from vigil.cli import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, CommandError

log = logging.getLogger(__name__)
WATCHDOG_STATE = "site-watchdog.json"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("site", help="site redundancy: mode, failback, watchdog",
                              description="The secondary site's mode (stand-by / stand-alone), "
                                          "failback to the primary, the watchdog and witness.")
    sub = p.add_subparsers(dest="site_command", metavar="ACTION")
    sub.required = True

    st = sub.add_parser("status", help="mode, since when, why, probe paths, delta backlog")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)

    sa = sub.add_parser("standalone", help="switch this site to stand-alone now (e.g. for a "
                                           "zero-downtime update of the primary)")
    sa.add_argument("--reason", required=True, help="why (kept in the mode file and the log)")
    sa.add_argument("--dry-run", action="store_true", help="say what would change")
    sa.set_defaults(func=cmd_standalone)

    fb = sub.add_parser("failback", help="lock funds on the primary, go stand-by, transfer "
                                         "the delta's xDRs exactly once (re-runnable)")
    fb.add_argument("--dry-run", action="store_true", help="print what would be done")
    fb.add_argument("--batch", type=int, help="xDRs per transaction (default [Delta] "
                                              "Failback_Batch)")
    fb.add_argument("--json", action="store_true", help="print the report as JSON")
    fb.set_defaults(func=cmd_failback)

    wd = sub.add_parser("watchdog", help="probe the primary and switch modes (supervisor runs "
                                         "this on the secondary site)")
    wd.add_argument("--once", action="store_true", help="one probe round, print it, exit")
    wd.set_defaults(func=cmd_watchdog)

    wi = sub.add_parser("witness", help="tell watchdogs whether this (third) site sees the "
                                        "primary (supervisor runs this on the central server)")
    wi.add_argument("--listen", help="host:port (default [Watchdog] Witness_Listen)")
    wi.set_defaults(func=cmd_witness)


def _config(args: argparse.Namespace) -> Any:
    from vigil import config

    return config.load(args.config)


def _paths(cfg: Any) -> Any:
    from vigil.site_mode import mode_path

    return mode_path(cfg.path("Site", "State_Dir"))


def site_status(cfg: Any) -> dict[str, Any]:
    from redundancy.site.failback import FailbackError
    from redundancy.site.failback import from_config as failback_from_config
    from vigil import site_mode as modes
    from vigil import statefile

    out: dict[str, Any] = {"site": cfg.get("Site", "Name"), "role": cfg.get("Site", "Role")}
    try:
        out.update(modes.read(_paths(cfg)).to_json())
    except statefile.CorruptStateError as exc:
        out.update(mode="unknown", error=str(exc))
    try:
        out["watchdog"] = statefile.read_json(cfg.path("Site", "State_Dir") / WATCHDOG_STATE)
    except statefile.CorruptStateError as exc:
        out["watchdog"] = {"error": str(exc)}
    try:
        out["backlog"] = failback_from_config(cfg).backlog().to_json()
    except FailbackError as exc:
        out["backlog"] = {"error": str(exc)}
    return out


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    st = site_status(cfg)
    if args.json:
        json.dump(st, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        print(f"site {st['site']} ({st['role']}): mode {st.get('mode', '?').upper()} since "
              f"{st.get('since') or '-'} by {st.get('by') or '-'}: {st.get('reason', '')}")
        if st.get("last_failback"):
            print(f"  last failback: {st['last_failback']}")
        wd = st.get("watchdog") or {}
        for name, path in sorted((wd.get("paths") or {}).items()):
            print(f"  probe {name:10} {path.get('verdict', '?'):8} {path.get('detail', '')}")
        if wd.get("updated_at"):
            print(f"  watchdog: {wd.get('summary', '')} (updated {wd['updated_at']})")
        b = st["backlog"]
        if "error" in b:
            print(f"  backlog: unknown ({b['error']})")
        else:
            print(f"  delta: {b['delta_max']} xDR(s) recorded, transferred up to "
                  f"{b['transferred_upto']}, locked up to {b['locked_upto']}; pending "
                  f"{b['pending_xdrs']}; funds locked on {b['locked_accounts']} account(s), "
                  f"total {b['locked_total']}")
    backlog = st.get("backlog") or {}
    if st.get("mode") != "standby" or backlog.get("pending_xdrs"):
        return EXIT_FAILED
    return EXIT_UNAVAILABLE if "error" in backlog else EXIT_OK


def cmd_standalone(args: argparse.Namespace) -> int:
    from vigil import site_mode as modes

    cfg = _config(args)
    path = _paths(cfg)
    cur = modes.read(path)
    if cur.standalone:
        print(f"already stand-alone since {cur.since}: {cur.reason}")
        return EXIT_OK
    if args.dry_run:
        print(f"would switch {cfg.get('Site', 'Name')} to stand-alone: {args.reason}")
        return EXIT_OK
    modes.write(path, modes.STANDALONE, args.reason, "admin")
    from redundancy.site.switch import after_switch

    after_switch(cfg, modes.STANDALONE, f"manual: {args.reason}")
    print(f"{cfg.get('Site', 'Name')}: stand-alone (this site's RADIUS now answers)")
    return EXIT_OK


def cmd_failback(args: argparse.Namespace) -> int:
    from redundancy.site.failback import FailbackError
    from redundancy.site.failback import from_config as failback_from_config
    from vigil import site_mode as modes

    cfg = _config(args)
    path = _paths(cfg)

    def progress(line: str) -> None:
        print(line, flush=True)

    fb = failback_from_config(cfg, args.batch, None if args.json else progress)
    switched = []

    def to_standby() -> None:
        # a re-run (already stand-by) finishes the transfer without a new switch
        from vigil import statefile

        try:
            standalone = modes.read(path).standalone
        except statefile.CorruptStateError:
            standalone = True  # unknown: make it stand-by for sure
        if standalone:
            modes.write(path, modes.STANDBY, "failback", "failback")
            switched.append(True)

    try:
        report = fb.run(to_standby, dry_run=args.dry_run)
    except FailbackError as exc:
        raise CommandError(f"failback stopped (re-run it, it is safe): {exc}",
                           EXIT_UNAVAILABLE if exc.unavailable else EXIT_FAILED) from exc
    if switched:
        from redundancy.site.switch import after_switch

        after_switch(cfg, modes.STANDBY, f"failback: {report.transferred} xDR(s) transferred")
    if args.json:
        json.dump({"transferred": report.transferred, "batches": report.batches,
                   "locked_rows": report.locked_rows, "seconds": round(report.seconds, 3),
                   "xdrs_per_sec": round(report.rate), "actions": report.actions,
                   "dry_run": args.dry_run}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.dry_run:
        print(f"failback done: {report.transferred} xDR(s) in {report.batches} batch(es), "
              f"{report.seconds:.1f} s ({report.rate:.0f}/s); this site is stand-by")
    return EXIT_OK


def cmd_watchdog(args: argparse.Namespace) -> int:
    from redundancy.site.watchdog import build
    from vigil import logs

    cfg = _config(args)
    logs.setup_from_config(cfg, "site-watchdog", console=args.once)
    dog = build(cfg)
    if args.once:
        action = dog.round()
        st = json.loads(dog.state_file.read_text())
        for name, r in sorted(st["paths"].items()):
            print(f"{name:12} {r['verdict']:8} {r['detail']}")
        print(f"=> {st['summary']}" + (f"; action: {action}" if action else ""))
        return EXIT_OK
    dog.run_forever()
    return EXIT_OK


def cmd_witness(args: argparse.Namespace) -> int:
    import signal

    from sqlalchemy.engine import make_url

    from redundancy.site.failback import primary_url
    from redundancy.site.probes import DbTarget, db_probe
    from redundancy.site.settings import host_port, split_host_port
    from redundancy.site.witness import Witness
    from vigil import logs

    cfg = _config(args)
    logs.setup_from_config(cfg, "site-witness")
    try:
        host, port = split_host_port(host_port(args.listen or cfg.get("Watchdog",
                                                                      "Witness_Listen")))
    except ValueError as exc:
        raise CommandError(f"--listen: {exc}", 2) from None
    target = DbTarget.from_url(make_url(primary_url(cfg)))
    ct, rt = cfg.get("Watchdog", "Connect_Timeout_sec"), cfg.get("Watchdog", "Read_Timeout_sec")
    try:
        w = Witness(lambda: db_probe(target, ct, rt), host, port,
                    cfg.get("Watchdog", "Probe_Interval_sec"))
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    signal.signal(signal.SIGTERM, w.stop)
    signal.signal(signal.SIGINT, w.stop)
    w.serve_forever()
    return EXIT_OK
