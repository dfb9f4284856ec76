"""``vigil-nsca``: an ``nsca``-compatible daemon reading the C daemon's ``nsca.cfg``.

Usage: ``vigil-nsca -c nsca.cfg [--single|--daemon|--inetd] [-f]``. It always
runs in the foreground (supervisor or systemd keep it running), one thread
per connection. From ``nsca.cfg`` it reads ``server_address``,
``server_port``, ``password``, ``decryption_method``, ``command_file``,
``alternate_dump_file``, ``max_packet_age``, and the Vigil additions
``allowed_hosts``, ``clock_skew``, ``spool_dir`` (spool instead of the
command file) and ``pid_file`` (written if given).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from nsca import crypto, nscacfg
from nsca.commandfile import CommandFileSink
from nsca.errors import NSCAError
from nsca.server import CommandSink, Server, ServerOptions, Sink, SpoolSink, parse_allowed
from nsca.spool import SpoolWriter

log = logging.getLogger(__name__)

USAGE = "Usage: vigil-nsca -c <config_file> [--single|--daemon|--inetd] [-f]"


class Stopper:
    """SIGTERM/SIGINT handlers, installed before anything listens.

    Supervisor may stop a program the moment it is up; a signal that arrives
    before the server exists is remembered and applied when it registers.
    """

    def __init__(self) -> None:
        self.requested = False
        self._callbacks: list[Callable[[], None]] = []
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handler)
            signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        self.requested = True
        for cb in self._callbacks:
            cb()

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)
        if self.requested:
            callback()


def server_from_nsca_cfg(path: str) -> Server:
    cfg = nscacfg.parse(path)
    method = nscacfg.get_int(cfg, path, "decryption_method", 1, 0, 255)
    try:
        crypto.check_method(method)
        allowed = parse_allowed(nscacfg.get_str(cfg, "allowed_hosts"))
    except (NSCAError, ValueError) as exc:
        raise nscacfg.CfgError(f"Error: {path}: {exc}") from exc
    opts = ServerOptions(
        address=nscacfg.get_str(cfg, "server_address", "0.0.0.0") or "0.0.0.0",
        port=nscacfg.get_int(cfg, path, "server_port", 5667, 1, 65535),
        password=nscacfg.get_password(cfg),
        method=method,
        allowed=allowed,
        max_packet_age=nscacfg.get_int(cfg, path, "max_packet_age", 30, 0, 900),
        clock_skew=nscacfg.get_int(cfg, path, "clock_skew", 5, 0, 300),
        first_packet_timeout=nscacfg.get_int(cfg, path, "first_packet_timeout", 10, 1, 3600),
        max_connections=nscacfg.get_int(cfg, path, "max_connections", 256, 1, 100_000),
        max_per_source=nscacfg.get_int(cfg, path, "max_connections_per_source", 32, 1,
                                       100_000),
    )
    sink: Sink
    spool_dir = nscacfg.get_str(cfg, "spool_dir")
    if spool_dir:
        sink = SpoolSink(SpoolWriter(Path(spool_dir)))
    else:
        command_file = nscacfg.get_str(cfg, "command_file")
        if not command_file:
            raise nscacfg.CfgError(f"Error: {path}: command_file (or spool_dir) is required")
        alt = nscacfg.get_str(cfg, "alternate_dump_file")
        sink = CommandSink(CommandFileSink(Path(command_file),
                                           alternate=Path(alt) if alt else None))
    server = Server(opts, sink)
    pid_file = nscacfg.get_str(cfg, "pid_file")
    if pid_file:
        try:
            Path(pid_file).write_text(f"{os.getpid()}\n")
        except OSError as exc:
            log.warning("cannot write pid file %s: %s", pid_file, exc.strerror)
    return server


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    config = None
    while args:
        arg = args.pop(0)
        if arg == "-c" and args:
            config = args.pop(0)
        elif arg in ("--single", "--daemon", "--inetd", "-f", "-s", "-d", "-i"):
            if arg in ("--inetd", "-i"):
                print("vigil-nsca: inetd mode is not supported; run it under supervisor",
                      file=sys.stderr)
                return 2
        elif arg in ("-h", "--help"):
            print(USAGE)
            return 0
        else:
            print(f"vigil-nsca: unknown argument {arg!r}\n{USAGE}", file=sys.stderr)
            return 2
    if not config:
        print(USAGE, file=sys.stderr)
        return 2
    from vigil import logs

    logs.setup("Console", None, os.environ.get("VIGIL_NSCA_LOG_LEVEL", "INFO"), "vigil-nsca")
    stopper = Stopper()
    try:
        server = server_from_nsca_cfg(config)
    except NSCAError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    stopper.on_stop(server.stop)
    server.serve_forever()
    return 0
