"""``vigil plugins``: install Vigil's plugins for a stock Nagios, NRPE or Icinga.

    vigil plugins install [--dir DIR] [--settings FILE] [--state-dir DIR] [--dry-run] [--json]
    vigil plugins list [--json]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from checks import PLUGINS
from checks import install as inst


def register(sub: Any) -> None:
    p = sub.add_parser("plugins", help="install check_vigil_* for a stock Nagios/NRPE/Icinga",
                       description=__doc__)
    ps = p.add_subparsers(dest="plugins_command", metavar="ACTION")
    ps.required = True
    i = ps.add_parser("install", help="link check_vigil_<name> in the Monitoring Plugins "
                                      "folder, write the nagios-readable plugin settings")
    i.add_argument("--dir", type=Path, default=inst.PLUGIN_DIR,
                   help=f"Monitoring Plugins folder (default {inst.PLUGIN_DIR})")
    i.add_argument("--settings", type=Path, default=inst.PLUGIN_CONF,
                   help=f"plugin settings file to write (default {inst.PLUGIN_CONF})")
    i.add_argument("--state-dir", type=Path, default=inst.PLUGIN_STATE_DIR,
                   help=f"state folder of plugins run by nagios (default "
                        f"{inst.PLUGIN_STATE_DIR})")
    i.add_argument("--program", help="the vigil-check the links point to (default: the one "
                                      "beside this Python)")
    i.add_argument("--group", default=inst.NAGIOS, help="group that may read the settings "
                                                       "(default nagios; created if absent)")
    i.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    i.add_argument("--json", action="store_true", help="the plan and result as JSON")
    i.set_defaults(func=_install)
    ls = ps.add_parser("list", help="the check_vigil_* names")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)


def _install(args: argparse.Namespace) -> int:
    from vigil.cli import EXIT_FAILED, CommandError

    p = inst.plan(args.config, plugin_dir=args.dir, conf_path=args.settings,
                  state_dir=args.state_dir, group=args.group, program=args.program)
    done: list[str] = []
    if not args.dry_run:
        if os.geteuid() != 0:
            raise CommandError("must run as root (it creates the nagios user and a root:nagios "
                               "file); --dry-run shows the plan", EXIT_FAILED)
        done = inst.apply(p)
    if args.json:
        print(json.dumps({"plugin_dir": str(p.plugin_dir), "program": p.program,
                          "links": sorted(p.links), "settings_file": str(p.conf_path),
                          "state_dir": str(p.state_dir), "group": p.group,
                          "create_group": p.create_group, "create_user": p.create_user,
                          "secrets_left_out": p.left_out, "warnings": p.warnings,
                          "dry_run": args.dry_run, "done": done}, indent=2))
        return 0
    verb = "would link" if args.dry_run else "linked"
    print(f"{verb} {len(p.links)} plugins in {p.plugin_dir} -> {p.program}")
    if p.create_group or p.create_user:
        print(f"{'would create' if args.dry_run else 'created'}: "
              + ", ".join(n for n, f in ((f"group {p.group}", p.create_group),
                                         ("user nagios", p.create_user)) if f))
    print(f"plugin settings: {p.conf_path} (0640 root:{p.group}); state: {p.state_dir}")
    if p.left_out:
        print("secrets not given to plugins: " + ", ".join(p.left_out))
    for w in p.warnings:
        print(f"warning: {w}")
    if args.dry_run:
        print("--- settings file would be:")
        print(p.conf_text.rstrip())
    return 0


def _list(args: argparse.Namespace) -> int:
    names = [f"{inst.PREFIX}{n}" for n in PLUGINS]
    if args.json:
        print(json.dumps([{"program": f, "plugin": n} for f, n in zip(names, PLUGINS,
                                                                      strict=True)]))
    else:
        print("\n".join(names))
    return 0
