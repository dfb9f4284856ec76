"""`vigil calls list` and `vigil calls disconnect`: calls in progress for the NOC.

Exit codes of `vigil calls disconnect` (also in docs/billing.md):
0 the node acknowledged (Disconnect-ACK), 1 the node refused (Disconnect-NAK,
with its Error-Cause), 2 usage, 3 no answer or node unreachable (or the
billing database unavailable), 4 no such call in progress (it ended, or
never was).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import Any

from vigil.cli import EXIT_UNAVAILABLE, EXIT_USAGE, CommandError
from vigil.config import load

EXIT_NO_CALL = 4

log = logging.getLogger("billing.calls")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _connect(args: argparse.Namespace) -> Any:
    from billing.db import make_engine

    cfg = load(args.config)
    return cfg, make_engine(cfg)


def _unavailable(exc: Exception) -> CommandError:
    return CommandError(f"billing database unavailable: {exc}", EXIT_UNAVAILABLE)


def cmd_list(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from billing.calls import list_calls

    _cfg, engine = _connect(args)
    try:
        with engine.connect() as conn:
            calls = list_calls(conn, customer=args.customer or "", account=args.account or "",
                               node=args.node or "")
    except SQLAlchemyError as exc:
        raise _unavailable(exc) from exc
    finally:
        engine.dispose()
    now = _now()
    if args.json:
        json.dump([c.as_dict(now) for c in calls], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not calls:
        print("no calls in progress")
        return 0
    print(f"{'CALL':<44} {'ACCOUNT':<16} {'CUSTOMER':<20} {'NODE':<14} {'CLD':<16} "
          f"{'DURATION':>8} {'RESERVED':>10} {'CREDIT':>6} STATE")
    for c in calls:
        state = ("answered" if c.answered else "authorized") + \
            ("" if c.authorized else ", not authorized")
        credit = "-" if c.credit_time is None else str(c.credit_time)
        print(f"{c.call_id[:44]:<44} {c.account[:16]:<16} {c.customer[:20]:<20} "
              f"{(c.node or c.node_ip)[:14]:<14} {c.cld[:16]:<16} {c.duration(now):>8} "
              f"{c.reserved:>10.5f} {credit:>6} {state}")
    print(f"{len(calls)} calls in progress")
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from billing import disconnect
    from billing import models as m
    from billing.calls import find_call
    from billing.server import load_dictionary
    from vigil import logs

    if args.timeout <= 0 or args.retries < 1:
        raise CommandError("--timeout must be above 0 and --retries at least 1", EXIT_USAGE)
    cfg, engine = _connect(args)
    if not args.dry_run:
        logs.setup_from_config(cfg, "calls")  # a forced disconnect belongs in the billing log
    try:
        with engine.connect() as conn:
            call = find_call(conn, args.call_id)
            ended = None
            node = None
            if call is None:
                ended = conn.execute(select(m.EndedCall.ended_at).where(
                    m.EndedCall.conf_id == args.call_id[:128])).scalar()
            else:
                node = conn.execute(select(m.Node.name, m.Node.nas_ip, m.Node.radius_secret,
                                           m.Node.disconnect_port).where(
                    m.Node.nas_ip == call.node_ip).order_by(m.Node.id)).first()
    except SQLAlchemyError as exc:
        raise _unavailable(exc) from exc
    finally:
        engine.dispose()
    if call is None:
        why = f"it ended at {ended:%Y-%m-%d %H:%M:%S} UTC" if ended else \
            "unknown call, or it ended a while ago"
        log.warning("call %s: disconnect asked for a call not in progress (%s)",
                    args.call_id, why)
        raise CommandError(f"no call {args.call_id!r} in progress: {why}", EXIT_NO_CALL)
    if node is None:
        raise CommandError(f"call {call.call_id!r} is on {call.node_ip or 'an unknown node'}, "
                           "which is not in the nodes table: no secret to sign with",
                           EXIT_NO_CALL)
    target = disconnect.Target(node.name, node.nas_ip, node.disconnect_port,
                               node.radius_secret)
    attrs = disconnect.request_attributes(call, _now())
    if args.dry_run:
        shown = {"node": target.node, "address": target.address, "port": target.port,
                 "attributes": [[n, v] for n, v in attrs]}
        if args.json:
            json.dump({"dry_run": True, **shown}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(f"would send a Disconnect-Request to node {target.node} at "
                  f"{target.address}:{target.port}:")
            for n, v in attrs:
                print(f"  {n} = {v}")
        return 0
    outcome = disconnect.send(target, attrs, load_dictionary(), timeout=args.timeout,
                              retries=args.retries)
    if args.json:
        json.dump({"call_id": call.call_id, "node": target.node, "address": target.address,
                   "port": target.port, **outcome.as_dict()}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"call {call.call_id}: node {target.node} ({target.address}:{target.port}): "
              f"{outcome.text}")
    return outcome.exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    calls = sub.add_parser("calls", help="calls in progress: list, force a disconnect")
    cs = calls.add_subparsers(dest="calls_command", metavar="ACTION", required=True)
    p = cs.add_parser("list", help="calls in progress with their duration, reservation and "
                      "credit time",
                      description="Calls being authorized or in progress, whichever engine "
                      "saw them. DURATION is seconds since the Start (since the authorization "
                      "before it); RESERVED the funds the call holds; CREDIT the "
                      "h323-credit-time granted.")
    p.add_argument("--customer", help="only this customer (name)")
    p.add_argument("--account", help="only this account id")
    p.add_argument("--node", help="only this node (name or NAS IP)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = cs.add_parser(
        "disconnect", help="end a call: RFC 5176 Disconnect-Request to its node",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send an RFC 5176 Disconnect-Request for CALL_ID (as `vigil calls list` "
        "shows it) to the node carrying the call, signed with the node's secret from the "
        "nodes table, to its disconnect_port (3799 unless provisioned). The call leaves the "
        "list when the node's Stop arrives.",
        epilog="exit codes: 0 Disconnect-ACK, 1 Disconnect-NAK (Error-Cause shown), 2 usage, "
        "3 no answer / node unreachable / database unavailable, 4 no such call in progress")
    p.add_argument("call_id")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each "
                   "answer (default 3)")
    p.add_argument("--retries", type=int, default=3, help="sends at most, the same packet "
                   "each time (default 3)")
    p.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_disconnect)
