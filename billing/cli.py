"""`vigil` subcommands of the billing room.

db upgrade|current, radiusd, provision, rates import, account show|adjust|history,
customer show, cdr list, call.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from vigil.cli import EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from vigil.config import Config, load


def _cfg(args: argparse.Namespace) -> Config:
    return load(args.config)


def _db(cfg: Config) -> Any:
    from billing.db import make_engine

    return make_engine(cfg)


def _print_json(obj: Any) -> None:
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return str(o)
        return str(o)

    json.dump(obj, sys.stdout, indent=2, default=default)
    sys.stdout.write("\n")


def _site_allows(cfg: Config, what: str, dry_run: bool) -> None:
    """On a secondary site (stand-by or stand-alone) only calls change data:
    anything else would conflict when the primary's data comes back."""
    if dry_run or cfg.get("Site", "Role") != "secondary":
        return
    from vigil.site_mode import ModeRefused, refuse_changes

    try:
        refuse_changes(cfg.path("Site", "State_Dir"), what)
    except ModeRefused as exc:
        raise CommandError(str(exc), EXIT_FAILED) from None


def _unavailable(exc: Exception) -> CommandError:
    return CommandError(f"billing database unavailable: {exc}", EXIT_UNAVAILABLE)


# ------------------------------------------------------------------- db
def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError

    from billing import schema
    from billing.db import database_url, safe_url

    cfg = _cfg(args)
    _site_allows(cfg, "schema upgrade", args.dry_run)
    engine = _db(cfg)
    try:
        cur = schema.current(engine)
    except OperationalError as exc:
        raise _unavailable(exc) from exc
    head = schema.head()
    where = safe_url(database_url(cfg))
    if cur == head:
        print(f"{where}: schema is current ({head})")
        return 0
    if args.dry_run:
        print(f"{where}: would upgrade schema {cur or '(empty)'} -> {head}")
        return 0
    schema.upgrade(engine)
    print(f"{where}: schema upgraded {cur or '(empty)'} -> {head}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from billing import schema

    engine = _db(_cfg(args))
    cur, head = schema.current(engine), schema.head()
    if args.json:
        _print_json({"current": cur, "head": head, "up_to_date": cur == head})
    else:
        print(f"current {cur or '(empty)'}, head {head}" + ("" if cur == head else
                                                              " - run `vigil db upgrade`"))
    return 0 if cur == head else EXIT_FAILED


# -------------------------------------------------------------- radiusd
def cmd_radiusd(args: argparse.Namespace) -> int:
    import logging

    from billing import schema
    from billing.app import processes, state_dir
    from vigil import logs

    cfg = _cfg(args)
    logs.setup_from_config(cfg, "radiusd", console=args.foreground_log)
    log = logging.getLogger("billing.server")
    db = _db(cfg)
    try:
        if schema.current(db) != schema.head():
            raise CommandError("the billing schema is not current: run `vigil db upgrade`",
                               EXIT_FAILED)
    except CommandError:
        raise
    except Exception as exc:
        log.error("cannot reach the billing database at start: %s", exc)
        raise _unavailable(exc) from exc
    n = processes(cfg)
    db.dispose()  # the engine makes its own pool (and each process after the fork)
    from billing.stats_files import forget_extra_processes

    # Counters files of processes beyond n (a larger Processes before) would
    # otherwise be read as those of engines that stopped.
    forget_extra_processes(state_dir(cfg), n)
    if n <= 1:
        return _serve(cfg, None, 0, False)
    from billing.processes import ProcessGroup, cpu_plan

    hung = cfg.get("Radius", "Hung_Process_sec")
    log.info("starting %d engine processes on one set of ports (hung after %s)", n,
             f"{hung} s" if hung else "never: Hung_Process_sec=0")
    cpus = cpu_plan(cfg.get("Radius", "CPU_Affinity"), n)
    if any(c is not None for c in cpus):
        log.info("engine processes pinned to CPUs %s ([Radius] CPU_Affinity)",
                 ", ".join("-" if c is None else str(c) for c in cpus))
    group = ProcessGroup(n, lambda i: _serve(cfg, None, i, True, group.stamps.writer(i)),
                         hung_after=hung, cpus=cpus)
    return group.run()


def _serve(cfg: Config, db: Any, index: int, reuse_port: bool,
           loop_alive: Callable[[float], None] | None = None) -> int:
    from billing.app import build_server, tune_process

    try:
        server = build_server(cfg, db, index=index, reuse_port=reuse_port)
        if loop_alive is not None:
            server.loop_alive = loop_alive
    except OSError as exc:
        raise CommandError(f"cannot listen on {cfg.get('Radius', 'Host')} "
                           f"{cfg.get('Radius', 'Auth_Port')}/{cfg.get('Radius', 'Acct_Port')}:"
                           f" {exc.strerror}", EXIT_FAILED) from exc
    server.install_signals()
    tune_process()
    server.serve_forever()
    return 0


# ------------------------------------------------------------ provision
def cmd_provision(args: argparse.Namespace) -> int:
    from billing.provision import ProvisionError, apply_document, load_document

    cfg = _cfg(args)
    _site_allows(cfg, "provisioning", args.dry_run)
    engine = _db(cfg)
    try:
        doc = load_document(Path(args.file))
        report = apply_document(engine, doc, dry_run=args.dry_run)
    except ProvisionError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    if args.json:
        _print_json(report.as_dict())
        return 0
    verb = "would create" if args.dry_run else "created"
    for item in report.created:
        print(f"{verb}: {item}")
    for item in report.updated:
        print(f"{'would update' if args.dry_run else 'updated'}: {item}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"{len(report.created)} created, {len(report.updated)} updated, "
          f"{report.unchanged} unchanged" + (" (dry run: nothing written)" if args.dry_run
                                             else ""))
    return 0


def cmd_rates_import(args: argparse.Namespace) -> int:
    from billing.rates_import import RateSheetError, import_rates

    cfg = _cfg(args)
    _site_allows(cfg, "rate import", args.dry_run)
    engine = _db(cfg)
    try:
        result = import_rates(engine, args.tariff, Path(args.file), dry_run=args.dry_run,
                              rejects=Path(args.rejects) if args.rejects else None)
    except RateSheetError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    if args.json:
        _print_json(result)
    else:
        print(f"tariff {args.tariff}: {result['created']} rates created, {result['updated']} "
              f"updated, {result['unchanged']} unchanged, {result['rejected']} rejected"
              + (" (dry run: nothing written)" if args.dry_run else ""))
    return 0 if not result["rejected"] else EXIT_FAILED


# ------------------------------------------------------------ show/list
def cmd_account_show(args: argparse.Namespace) -> int:
    from billing.reports import account_report

    report = account_report(_db(_cfg(args)), args.account_id)
    if report is None:
        raise CommandError(f"no account {args.account_id!r}", EXIT_FAILED)
    if args.json:
        _print_json(report)
    else:
        for k, v in report.items():
            print(f"{k:>18}: {v}")
    return 0


def cmd_account_adjust(args: argparse.Namespace) -> int:
    from billing.adjustments import AdjustmentError, adjust, parse_amount

    try:
        amount = parse_amount(args.amount)
        adj = adjust(_db(_cfg(args)), args.account_id, amount, args.reason,
                     dry_run=args.dry_run)
    except AdjustmentError as exc:
        raise CommandError(str(exc), EXIT_USAGE if "no account" not in str(exc)
                           else EXIT_FAILED) from exc
    if args.json:
        _print_json({**adj.as_dict(), "dry_run": args.dry_run})
        return 0
    kind = "top-up" if amount > 0 else "charge"
    verb = "would apply" if args.dry_run else "applied"
    print(f"{verb} {kind} of {abs(amount)} to account {adj.account_id} ({adj.billing_model}): "
          f"balance {adj.balance_before} -> {adj.balance_after}; by {adj.actor}: {adj.reason}"
          + (" (dry run: nothing written)" if args.dry_run else
             f" [adjustment {adj.adjustment_id}]"))
    return 0


def cmd_account_history(args: argparse.Namespace) -> int:
    from billing.adjustments import history

    rows = history(_db(_cfg(args)), args.account_id, limit=args.limit)
    if rows is None:
        raise CommandError(f"no account {args.account_id!r}", EXIT_FAILED)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"account {args.account_id}: no calls or adjustments yet")
        return 0
    for r in rows:
        change = r["funds_change"]
        print(f"{r['at']:%Y-%m-%d %H:%M:%S}  {r['kind']:<7} {'+' if change > 0 else ''}"
              f"{change:<12} {r['by']:<12} {r['detail']}")
    return 0


def cmd_customer_show(args: argparse.Namespace) -> int:
    from billing.reports import customer_report

    report = customer_report(_db(_cfg(args)), args.name)
    if report is None:
        raise CommandError(f"no customer {args.name!r}", EXIT_FAILED)
    if args.json:
        _print_json(report)
    else:
        for k, v in report.items():
            if k != "accounts":
                print(f"{k:>14}: {v}")
        print("      accounts:")
        for a in report["accounts"]:
            print(f"                {a['account_id']} ({a['billing_model']}, balance "
                  f"{a['balance']})")
    return 0


def cmd_cdr_list(args: argparse.Namespace) -> int:
    from billing.reports import list_xdrs

    rows = list_xdrs(_db(_cfg(args)), kind=args.kind, account=args.account,
                     vendor=args.vendor, limit=args.limit)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no xDRs")
        return 0
    owner = "account_id" if args.kind == "account" else "vendor"
    cols = ["xdr_id", owner, "cli", "cld", "connect_time", "duration", "charged_duration",
            "amount", "tariff", "conf_id"]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    from billing.simulator import SimulatorError, place_call

    try:
        rc = place_call(args)
    except SimulatorError as exc:
        raise CommandError(str(exc), exc.exit_code) from exc
    return rc


# -------------------------------------------------------------- engines
def engines_section(cfg: Config) -> tuple[str, list[str], Any]:
    """Every engine process seen in the last minute, on any server."""
    from billing.heartbeat import engines

    db = _db(cfg)
    try:
        rows = engines(db)
    finally:
        db.dispose()
    rows = [{k: v.isoformat(sep=" ") if hasattr(v, "isoformat") else v for k, v in r.items()}
            for r in rows]  # JSON-ready for `vigil status --json`
    lines = [f"billing engines on this database: {len(rows)}"]
    lines += [f"  {r['name']:<32} {r['listen']:<24} seen {r['seen_at'][11:19]}  "
              f"{r['requests']} requests, {r['db_errors']} db errors" for r in rows]
    return "engines", lines, rows


def _gc_part(data: dict[str, Any]) -> str:
    """The garbage collector's pauses of one process (billing/gc_pauses.py),
    when its counters file has them."""
    longest, slow_ms, slow = (data.get(k) for k in ("gc_pause_ms_max", "gc_slow_ms",
                                                      "gc_slow_pauses"))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
               for v in (longest, slow_ms, slow)):
        return ""
    return f", gc pauses over {slow_ms:g} ms: {slow} (longest {longest:.1f} ms)"


def processes_section(cfg: Config) -> tuple[str, list[str], Any]:
    """This server's engine processes, from their counters files (billing/stats_files.py)."""
    from billing.stats_files import read_engine

    # Three write intervals without a new file: the process stopped writing.
    max_age = 3 * cfg.get("Radius", "Stats_Interval_sec") + 2
    stats = read_engine(cfg.path("Site", "State_Dir"), max_age)
    if not stats.processes:
        return "engine_processes", [], []  # no engine on this server (a central server)
    rows = [{"index": p.index, "pid": p.pid, "state": p.state, "age_sec": round(p.age, 1),
             **p.data} for p in stats.processes]
    live = stats.live
    lines = [f"engine processes on this server: {len(live)} live"
             + (f", committer backlog {stats.total('committer_backlog')}" if live else "")]
    lines += [f"  process {p.index:<3} pid {p.pid or '-':<8} {p.state:<5} counters "
              f"{p.age:.0f}s old, {p.counter('access_requests')} authentications, "
              f"{p.counter('accounting_requests')} accountings, committer backlog "
              f"{p.counter('committer_backlog')}{_gc_part(p.data)}" for p in stats.processes]
    return "engine_processes", lines, rows


def cmd_engines(args: argparse.Namespace) -> int:
    try:
        _title, lines, rows = engines_section(_cfg(args))
    except Exception as exc:
        raise _unavailable(exc) from exc
    if args.json:
        _print_json(rows)
    else:
        print("\n".join(lines))
    return 0 if rows else EXIT_FAILED


# ------------------------------------------------------------- register
def register(sub: argparse._SubParsersAction) -> None:
    from vigil import status_sections

    status_sections.add(processes_section)
    status_sections.add(engines_section)
    p = sub.add_parser("engines", help="billing engines alive on the billing database",
                       description="Every `vigil radiusd` process, on any server, that wrote "
                       "its heartbeat to the billing database in the last minute. Exit 1 "
                       "when there is none.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_engines)
    db = sub.add_parser("db", help="billing database schema")
    dbs = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    p = dbs.add_parser("upgrade", help="create or upgrade the schema (Alembic migrations)")
    p.add_argument("--dry-run", action="store_true", help="say what would be done")
    p.set_defaults(func=cmd_db_upgrade)
    p = dbs.add_parser("current", help="show the schema version; exit 1 if not current")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_db_current)

    p = sub.add_parser("radiusd", help="run the RADIUS billing engine in the foreground",
                       description="Run the RADIUS billing engine in the foreground (what "
                       "supervisor runs). SIGTERM stops it cleanly after the current "
                       "commit; SIGHUP reloads nodes and connections.")
    p.add_argument("--foreground-log", action="store_true",
                   help="log to stderr instead of [Log] Log_Dest")
    p.set_defaults(func=cmd_radiusd)

    p = sub.add_parser("provision", help="apply a declarative JSON/YAML document",
                       description="Apply nodes, tariffs (with rates), products (with "
                       "accessibility), customers, accounts, vendors and connections from a "
                       "JSON or YAML file. Idempotent; all or nothing.")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_provision)

    rates = sub.add_parser("rates", help="tariff rates")
    rs = rates.add_subparsers(dest="rates_command", metavar="ACTION", required=True)
    p = rs.add_parser("import", help="import a rate sheet (the source's CSV layout)")
    p.add_argument("tariff", help="tariff name")
    p.add_argument("file", help="CSV file")
    p.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    p.add_argument("--rejects", metavar="FILE",
                   help="import the good rows and write the bad ones to FILE "
                        "(default: import nothing if any row is bad)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rates_import)

    acc = sub.add_parser("account", help="accounts")
    accs = acc.add_subparsers(dest="account_command", metavar="ACTION", required=True)
    p = accs.add_parser("show", help="show an account, its funds and calls in progress")
    p.add_argument("account_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_account_show)
    p = accs.add_parser("adjust", help="top up (+AMOUNT) or charge (-AMOUNT) an account, audited",
                        description="Change what an account may spend: a positive AMOUNT is "
                        "a top-up, a negative one a charge (e.g. -5). The "
                        "balance and an audit row (who, when, why) are written in one "
                        "transaction; `vigil account history ID` shows them.")
    p.add_argument("account_id", help="the account's id (its User-Name: PIN, ANI or IP)")
    p.add_argument("amount", help="e.g. 10, +10.50, -3.20 (in the account's currency)")
    p.add_argument("--reason", required=True, help="why (kept with the adjustment)")
    p.add_argument("--dry-run", action="store_true", help="show the new balance, write nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_account_adjust)
    p = accs.add_parser("history", help="an account's calls and adjustments, newest first")
    p.add_argument("account_id")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_account_history)

    cus = sub.add_parser("customer", help="customers")
    cuss = cus.add_subparsers(dest="customer_command", metavar="ACTION", required=True)
    p = cuss.add_parser("show", help="show a customer and its accounts")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_customer_show)

    cdr = sub.add_parser("cdr", help="xDRs (call detail records)")
    cdrs = cdr.add_subparsers(dest="cdr_command", metavar="ACTION", required=True)
    p = cdrs.add_parser("list", help="list the newest xDRs")
    p.add_argument("--kind", choices=("account", "vendor"), default="account")
    p.add_argument("--account", help="only this account id")
    p.add_argument("--vendor", help="only this vendor name")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cdr_list)

    from billing import calls_cli

    calls_cli.register(sub)

    from billing.simulator import add_arguments

    p = sub.add_parser("call", help="place a test call against a running engine",
                       description="Gateway simulator: authentication, authorization, "
                       "accounting Start and Stop for one call, printing every reply. "
                       "Defaults reproduce the source's NexTone call.")
    add_arguments(p)
    p.set_defaults(func=cmd_call)
