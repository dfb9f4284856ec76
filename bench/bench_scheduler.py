"""One scheduler pass over every check of etc/checks.conf: how long, and what it costs.

    .venv/bin/python bench/bench_scheduler.py [--config etc/vigil.conf] [--checks FILE]
                                              [--passes 3] [--all-plugins]

The pass runs exactly as `vigil monitor scheduler` runs it (``[Monitor]
Parallelism`` at a time, hard timeouts) and sends its results with Vigil's
NSCA client to Debian's ``nsca`` daemon on loopback (writing to a scratch
file), so spooling and sending are in the figures. It must end well inside
the 60-second pass period.

Reference peer, same run: the same commands one after another from
``/bin/sh`` under coreutils ``timeout`` (what a cron script would do).

Figures: wall time of the pass, CPU of the plugins (children) and of the
scheduler itself, the slowest checks, and the states. Bounded: every check
has its own timeout; the peer is cut at 120 s.
"""

from __future__ import annotations

import argparse
import logging
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checks import catalog  # noqa: E402
from monitor import settings  # noqa: E402
from monitor.scheduler import Scheduler, plugin_env  # noqa: E402
from monitor.spool import Spool  # noqa: E402
from monitor.testing import DebianNSCA, Spec  # noqa: E402
from monitor.transport import Outbox, VigilNSCASender  # noqa: E402
from vigil import config as vconfig  # noqa: E402
from vigil.config import Secret  # noqa: E402

PEER_CAP_SEC = 120.0


def cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def all_plugins() -> list[Spec]:
    from checks import PLUGINS

    return [Spec(n, n, ("vigil-check", n), 60, 10, "all") for n in PLUGINS]


def scheduler_pass(cfg: vconfig.Config, checks: list, passes: int) -> list[dict[str, float]]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        out = Path(tmp) / "commands"
        out.touch()
        with DebianNSCA(Path(tmp) / "nsca", out, password="bench", method=1) as nsca:
            sender = VigilNSCASender("127.0.0.1", nsca.port, Secret("bench"), 1, 10)
            sched = Scheduler(checks, host_name=cfg.get("Site", "Host_Name"),
                              site_name=cfg.get("Site", "Name"),
                              outbox=Outbox(sender, Spool(Path(tmp) / "spool")),
                              parallelism=cfg.get(settings.SECTION, "Parallelism"),
                              max_output=cfg.get(settings.SECTION, "Max_Output_Bytes"),
                              env=plugin_env(cfg.source))
            try:
                for i in range(passes):
                    own0 = cpu(resource.RUSAGE_SELF)
                    kids0 = cpu(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    report = sched.run_pass(everything=True)
                    wall = time.perf_counter() - t0
                    own = cpu(resource.RUSAGE_SELF) - own0
                    kids = cpu(resource.RUSAGE_CHILDREN) - kids0
                    d = report.delivery
                    figures.append({"wall": wall, "own": own, "kids": kids,
                                    "sent": d.sent if d else 0})
                    if i == 0:
                        states = Counter(o.state for _, o in report.outcomes)
                        slow = sorted(report.outcomes, key=lambda so: -so[1].duration)[:5]
                        print(f"  states: {dict(states)}")
                        print("  slowest: " + ", ".join(f"{s.name} {o.duration:.2f}s ({o.state})"
                                                        for s, o in slow))
                        if d and d.error:
                            print(f"  send error: {d.error}")
            finally:
                sched.close()
    return figures


def sequential_peer(checks: list, cfg: vconfig.Config) -> dict[str, float]:
    from monitor.runner import resolve_program

    lines = []
    for c in checks:
        argv = list(c.command)
        argv[0] = resolve_program(argv[0]) or argv[0]
        lines.append(f"timeout -k 1 {float(c.timeout_sec):g} {shlex.join(argv)} >/dev/null 2>&1")
    script = "\n".join(lines) + "\n"
    kids0 = cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        subprocess.run(["/bin/sh", "-c", script], env=plugin_env(cfg.source),
                       timeout=PEER_CAP_SEC, check=False)
        capped = False
    except subprocess.TimeoutExpired:
        capped = True
    return {"wall": time.perf_counter() - t0, "kids": cpu(resource.RUSAGE_CHILDREN) - kids0,
            "capped": float(capped)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "etc" / "vigil.conf"))
    ap.add_argument("--checks", help="checks file (default [Monitor] Checks_File)")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--all-plugins", action="store_true",
                    help="every plugin of `vigil-check --list` with its defaults, "
                         "instead of the checks file")
    args = ap.parse_args()
    # Plugins that fail here (no RADIUS engine running, ...) are figures, not news.
    logging.basicConfig(level=logging.ERROR, format="  %(levelname)s %(message)s")
    cfg = vconfig.load(args.config)
    if args.all_plugins:
        checks: list = all_plugins()
        source = "every plugin of vigil-check --list"
    else:
        path = Path(args.checks) if args.checks else cfg.path(settings.SECTION, "Checks_File")
        checks = list(catalog.load_checks(path, tolerant=True))
        source = str(path)
    period = cfg.get(settings.SECTION, "Pass_Period_sec")
    par = cfg.get(settings.SECTION, "Parallelism")
    print(f"bench_scheduler: {len(checks)} checks from {source}; parallelism {par}; "
          f"pass period {period} s")
    print("Vigil scheduler (one pass, results sent to Debian nsca on loopback):")
    figs = scheduler_pass(cfg, checks, max(1, args.passes))
    for i, f in enumerate(figs, 1):
        print(f"  pass {i}: wall {f['wall']:.2f} s, CPU plugins {f['kids']:.2f} s + scheduler "
              f"{f['own']:.2f} s = {f['kids'] + f['own']:.2f} s; {int(f['sent'])} results sent "
              f"({100 * f['wall'] / period:.1f}% of the period)")
    print("Reference peer (the same commands in sequence from /bin/sh under timeout):")
    peer = sequential_peer(checks, cfg)
    print(f"  wall {peer['wall']:.2f} s{' (cut at the cap)' if peer['capped'] else ''}, "
          f"CPU {peer['kids']:.2f} s")
    best = min(figs, key=lambda f: f["wall"])
    print(f"summary: pass {best['wall']:.2f} s wall / {best['kids'] + best['own']:.2f} s CPU vs "
          f"sequential {peer['wall']:.2f} s / {peer['kids']:.2f} s; "
          f"{'well inside' if best['wall'] < period / 2 else 'NOT well inside'} the {period} s "
          "period")
    return 0


if __name__ == "__main__":
    sys.exit(main())
