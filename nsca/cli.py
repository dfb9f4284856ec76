"""``vigil nsca ...``: the NSCA server, the relay, a one-shot sender, spool status."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the commands import these when they run, to keep `vigil --help` light
    from nsca.relay import Relay
    from nsca.server import Server
    from vigil.config import Config

log = logging.getLogger(__name__)


def spool_dir(cfg: Any) -> Path:
    """``[NSCA] Spool_Dir``; empty means ``<[Site] State_Dir>/nsca-spool``."""
    if cfg.get("NSCA", "Spool_Dir"):
        return cfg.path("NSCA", "Spool_Dir")
    return cfg.path("Site", "State_Dir") / "nsca-spool"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("nsca", help="NSCA server, relay and client",
                              description="NSCA: receive, spool, relay and send check results.")
    sub = p.add_subparsers(dest="nsca_command", metavar="ACTION")
    sub.required = True

    s = sub.add_parser("server", help="run the NSCA server in the foreground ([NSCA] Listen_*)")
    s.set_defaults(func=cmd_server)

    r = sub.add_parser("relay", help="run the spool -> central servers relay in the foreground")
    r.set_defaults(func=cmd_relay)

    snd = sub.add_parser("send", help="send one result (or send_nsca input on stdin) to "
                                      "[NSCA] Config_Server")
    snd.add_argument("--to", metavar="HOST:PORT", help="server (default: [NSCA] Config_Server)")
    snd.add_argument("--host", dest="result_host", help="host name of the result")
    snd.add_argument("--service", help="service description (omit for a host check)")
    snd.add_argument("--status", type=int, choices=range(4), help="0..3")
    snd.add_argument("--output", default="", help="plugin output")
    snd.add_argument("--dry-run", action="store_true", help="parse and show, do not send")
    snd.set_defaults(func=cmd_send)

    st = sub.add_parser("status", help="spool backlog and cursors per destination")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)


def _setup(args: argparse.Namespace, program: str) -> Config:
    from vigil import config, logs

    cfg = config.load(args.config)
    level = "DEBUG" if args.verbose > 1 else cfg.get("Log", "Level")
    # Foreground under supervisor: stderr, which supervisor writes to Log_Dir.
    logs.setup("Console", None, level, program)
    return cfg


def build_server(cfg: Config) -> Server:
    from nsca.commandfile import CommandFileSink
    from nsca.server import CommandSink, Server, ServerOptions, Sink, SpoolSink, parse_allowed
    from nsca.spool import SpoolWriter

    S = "NSCA"
    opts = ServerOptions(
        address=cfg.get(S, "Listen_Address"), port=cfg.get(S, "Listen_Port"),
        password=cfg.get(S, "Password").reveal(), method=cfg.get(S, "Encryption_Method"),
        allowed=parse_allowed(cfg.get(S, "Allowed_Hosts")),
        max_packet_age=cfg.get(S, "Max_Packet_Age"), clock_skew=cfg.get(S, "Clock_Skew_sec"),
        idle_timeout=cfg.get(S, "Idle_Timeout_sec"), dedupe_window=cfg.get(S, "Dedupe_Window"),
        first_packet_timeout=cfg.get(S, "First_Packet_Timeout_sec"),
        max_connections=cfg.get(S, "Max_Connections"),
        max_per_source=cfg.get(S, "Max_Connections_Per_Source"))
    sink: Sink
    if cfg.get(S, "Server_Output") == "spool":
        sink = SpoolSink(SpoolWriter(spool_dir(cfg),
                                     seal_interval=cfg.get(S, "Seal_Interval_ms") / 1000))
    else:
        alt = cfg.get(S, "Alternate_Dump_File")
        sink = CommandSink(CommandFileSink(cfg.path(S, "Command_File"),
                                           alternate=Path(alt) if alt else None))
    return Server(opts, sink)


def build_relay(cfg: Config) -> Relay | None:
    from nsca.relay import CommandFileDestination, Destination, NSCADestination, Relay

    S = "NSCA"
    password = cfg.get(S, "Central_Password") or cfg.get(S, "Password")
    method = cfg.get(S, "Central_Encryption_Method")
    if method is None:
        method = cfg.get(S, "Encryption_Method")
    dests: list[Destination] = [
        NSCADestination(h, p, password=password, method=method,
                        timeout=cfg.get(S, "Timeout_sec"), batch_size=cfg.get(S, "Batch_Size"),
                        packet_version=cfg.get(S, "Packet_Version"))
        for h, p in cfg.get(S, "Central_Servers")]
    if cfg.get(S, "NG_Servers"):
        from nsca.ng import NGDestination

        dests += [NGDestination(h, p, identity=cfg.get(S, "NG_Identity"),
                                psk=cfg.get(S, "NG_Password"), timeout=cfg.get(S, "Timeout_sec"),
                                batch_size=cfg.get(S, "NG_Batch_Size"))
                  for h, p in cfg.get(S, "NG_Servers")]
    if cfg.get(S, "Relay_To_Command_File"):
        dests.append(CommandFileDestination(cfg.path(S, "Command_File")))
    if not dests:
        return None
    return Relay(spool_dir(cfg), dests, retry_min=cfg.get(S, "Retry_Min_sec"),
                 retry_max=cfg.get(S, "Retry_Max_sec"), cursor_fsync=cfg.get(S, "Cursor_Fsync"))


def _sleep_until(event: Any) -> None:
    while not event.wait(1.0):
        pass


def _fail(exc: Exception, code: int) -> None:
    from vigil.cli import CommandError

    raise CommandError(str(exc), code) from exc


def cmd_server(args: argparse.Namespace) -> int:
    from nsca.daemon import Stopper
    from nsca.errors import NSCAError

    cfg = _setup(args, "vigil-nsca-server")
    stopper = Stopper()
    try:
        server = build_server(cfg)
    except NSCAError as exc:
        _fail(exc, 3)
    stopper.on_stop(server.stop)
    server.serve_forever()
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    from nsca.daemon import Stopper
    from nsca.errors import NSCAError
    from vigil.statefile import CorruptStateError

    cfg = _setup(args, "vigil-nsca-relay")
    stopper = Stopper()
    try:
        relay = build_relay(cfg)
    except NSCAError as exc:
        _fail(exc, 2)
    except CorruptStateError as exc:
        _fail(exc, 1)
    if relay is None:
        # Nothing to relay to (a site server, or a demo without central servers):
        # stay up so supervisor does not flap, and say so once.
        import threading

        idle = threading.Event()

        def wait() -> None:
            log.warning("no destinations: [NSCA] Central_Servers, NG_Servers and "
                        "Relay_To_Command_File are all empty; the relay idles")
            _sleep_until(idle)

        stopper.on_stop(idle.set)
        wait()
        return 0
    stopper.on_stop(relay.stop)
    try:
        relay.run()
    except NSCAError as exc:
        _fail(exc, 1)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from nsca import client
    from nsca.errors import ConnectionFailed, NSCAError
    from nsca.result import CheckResult
    from nsca.send_nsca import parse_input
    from nsca.settings import host_port
    from vigil import config

    cfg = config.load(args.config)
    S = "NSCA"
    host, port = host_port(5667)(args.to) if args.to else cfg.get(S, "Config_Server")
    if args.result_host:
        if args.status is None:
            _fail(ValueError("--status is required with --host"), 2)
        try:
            results = [CheckResult(args.result_host, args.service, args.status, args.output)]
        except ValueError as exc:
            _fail(exc, 2)
    else:
        results = parse_input(sys.stdin.read())
    if args.dry_run:
        for r in results:
            print(f"would send {r.host};{r.service or '-'};{r.status};{r.output}")
        return 0
    try:
        n = client.send_results(results, host=host, port=port, password=cfg.get(S, "Password"),
                                method=cfg.get(S, "Encryption_Method"),
                                timeout=cfg.get(S, "Timeout_sec"),
                                packet_version=cfg.get(S, "Packet_Version"))
    except ConnectionFailed as exc:
        _fail(exc, 3)
    except NSCAError as exc:
        _fail(exc, 1)
    print(f"{n} result(s) sent to {host}:{port}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from nsca.relay import read_cursor
    from nsca.spool import read_segment, ready_segments
    from vigil import config

    cfg = config.load(args.config)
    spool = spool_dir(cfg)
    segs = ready_segments(spool)
    counts = {s: len(read_segment(spool / "ready" / s)) for s in segs}
    names = [f"nsca-{h}-{p}" for h, p in cfg.get("NSCA", "Central_Servers")]
    names += [f"nsca-ng-{h}-{p}" for h, p in cfg.get("NSCA", "NG_Servers")]
    if cfg.get("NSCA", "Relay_To_Command_File"):
        names.append("command-file")
    out: dict[str, Any] = {"spool": str(spool), "segments": len(segs),
                           "records": sum(counts.values()), "destinations": {}}
    for name in names:
        cur = read_cursor(spool, name)
        backlog = sum(n - (cur.offset if s == cur.segment else 0)
                      for s, n in counts.items() if s >= cur.segment)
        out["destinations"][name] = {"segment": cur.segment, "offset": cur.offset,
                                     "backlog": backlog}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"spool {out['spool']}: {out['segments']} segments, {out['records']} records")
        for name, d in out["destinations"].items():
            print(f"  {name}: backlog {d['backlog']}")
    return 0
