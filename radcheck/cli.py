"""``vigil radcheck [--once] [--json]``: the RADIUS self-test, a program of its own.

Run by supervisor in the foreground (its stderr is the program's log file);
``--once`` sends one self-test request and prints the result (0 accepted,
1 failed), without restart or alert.
"""

from __future__ import annotations

import argparse
import json

from radcheck import loop
from radcheck.probe import probe
from vigil import config, logs

EXIT_OK = 0
EXIT_FAILED = 1


def cmd_radcheck(args: argparse.Namespace) -> int:
    cfg = config.load(args.config)
    if args.once:
        settings = loop.Settings.from_config(cfg)
        result = probe(settings.test)
        if args.json:
            print(json.dumps(vars(result), sort_keys=True))
        else:
            print(f"{settings.test.target}: " + (f"Access-Accept in {result.rtt_ms} ms"
                                                 if result.ok else str(result.error)))
        return EXIT_OK if result.ok else EXIT_FAILED
    # Under supervisor stderr is the program's own log file.
    level = "DEBUG" if args.verbose > 1 else cfg.get("Log", "Level")
    logs.setup("Console", None, level, "radcheck")
    return loop.serve(cfg)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("radcheck", help="RADIUS self-test: restart the engine when it stops "
                       "answering, alert by e-mail (foreground, run by supervisor)")
    p.add_argument("--once", action="store_true",
                   help="send one self-test request, print the result and exit "
                        "(0 accepted, 1 failed); no restart, no alert")
    p.add_argument("--json", action="store_true", help="with --once: JSON output")
    p.set_defaults(func=cmd_radcheck)
