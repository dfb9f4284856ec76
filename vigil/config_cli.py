"""`vigil config check|options`: validate the configuration, list every option."""

from __future__ import annotations

import argparse
import json

from vigil.config import declared, env_name, load


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    print(f"{cfg.source}: OK ({len(declared())} options checked)")
    return 0


def cmd_options(args: argparse.Namespace) -> int:
    rows = [{"section": o.section, "option": o.name, "default": "********" if o.secret
             else o.default, "env": env_name(o.section, o.name), "help": o.help}
            for o in declared()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    section = None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            print(f"[{section}]")
        print(f"  {r['option']} = {r['default']}\n      {r['help']}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="check the configuration file, list options")
    s = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = s.add_parser("check", help="validate every option; exit 2 naming the bad one")
    c.set_defaults(func=cmd_check)
    o = s.add_parser("options", help="every option with its default and meaning")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=cmd_options)
