"""``vigil``: the one admin command.

Each room adds its subcommands in its own ``cli`` module with a
``register(subparsers)`` function; this file only wires them together.
Exit codes: 0 done, 1 the operation failed, 2 bad usage or configuration,
3 a needed service is unreachable, 130 interrupted, 141 stdout closed early
(``vigil ... | head``: no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from vigil import __version__
from vigil.config import ConfigError
from vigil.pipes import flush_stdout, stdout_closed

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

ROOM_CLIS = (
    "vigil.config_cli",
    "billing.cli",
    "nsca.cli",
    "monitor.cli",
    "checks.install_cli",
    "redundancy.cli",
    "radcheck.cli",
    "vigil.supervisor_cli",
)


class CommandError(Exception):
    """An operation failed in a way the user must hear about; carries the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil",
        description="Vigil appliance administration: billing engine, monitoring, redundancy.",
    )
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="configuration file (default: $VIGIL_CONF, /etc/vigil/vigil.conf, "
                             "./etc/vigil.conf)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more detail (repeat for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in ROOM_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        rc = _main(argv)
        flush_stdout()
    except BrokenPipeError:
        return stdout_closed()
    return rc


def _main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose > 1 else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        rc = args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except CommandError as exc:
        print(f"vigil {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(rc or 0)


if __name__ == "__main__":
    # `python -m vigil.cli`: run the imported module's main, so the rooms'
    # `raise CommandError` (vigil.cli's) is the class caught here, not __main__'s.
    from vigil.cli import main as _main

    sys.exit(_main())
