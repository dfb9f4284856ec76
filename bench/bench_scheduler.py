"""One scheduler pass over every check of etc/checks.conf: how long, and what CPU it costs.

    .venv/bin/python bench/bench_scheduler.py [--config etc/vigil.conf] [--checks FILE]
                                              [--passes 3] [--all-plugins] [--sh-peer]

The pass runs exactly as `vigil monitor scheduler` runs it (``[Monitor]
Parallelism`` at a time, hard timeouts, Vigil's plugins forked from the
pre-imported worker, :mod:`monitor.zygote`) and sends its results with Vigil's
NSCA client to Debian's ``nsca`` daemon on loopback (writing to a scratch
file), so spooling and sending are in the figures. Goal: under 0.3 s of CPU
for the whole pass (scheduler + worker + plugins), well inside the 60-second
period. Then, in the same run:

- the same pass with a Python start per plugin (``workers=False``: what the
  scheduler did before the worker);
- the reference peer: the indicators both sets have (disk, inodes, load, swap,
  file age, a process by pid file), Vigil's plugins against the C Monitoring
  Plugins (Debian monitoring-plugins-basic: check_disk, check_load, check_swap,
  check_file_age, check_procs), both through the same scheduler;
- with ``--sh-peer``: the checks file's commands in sequence from ``/bin/sh``
  under coreutils ``timeout`` (what a cron script would do).

CPU counts the scheduler, its children and the worker's children (Linux
/proc). The first pass with the worker also pays for starting it once.
"""

from __future__ import annotations

import argparse
import logging
import os
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


C_PLUGINS = Path("/usr/lib/nagios/plugins")


def shared_indicators(scratch: Path) -> tuple[list[Spec], list[Spec]]:
    """(Vigil's, the C Monitoring Plugins') checks of the indicators both sets have."""
    log = scratch / "billing.log"
    log.write_text("started\n")
    pid = scratch / "self.pid"
    pid.write_text(f"{os.getpid()}\n")
    c = str(C_PLUGINS)
    pairs = [
        ("disk_root", ("disk", "-p", "/", "-w", "80", "-c", "90"),
         (f"{c}/check_disk", "-w", "20%", "-c", "10%", "-p", "/")),
        ("disk_tmp", ("disk", "-p", "/tmp", "-w", "80", "-c", "90"),
         (f"{c}/check_disk", "-w", "20%", "-c", "10%", "-p", "/tmp")),
        ("inodes", ("inodes", "-p", "/", "-w", "80", "-c", "90"),
         (f"{c}/check_disk", "-W", "20%", "-K", "10%", "-p", "/")),
        ("load", ("load", "-m", "5", "--per-cpu", "-w", "2", "-c", "4"),
         (f"{c}/check_load", "-r", "-w", "2,2,2", "-c", "4,4,4")),
        ("swap", ("swap", "-w", "50", "-c", "80"),
         (f"{c}/check_swap", "-w", "50%", "-c", "20%")),
        ("log_age", ("file_age", "-f", str(log), "-w", "300", "-c", "900"),
         (f"{c}/check_file_age", "-w", "300", "-c", "900", "-f", str(log))),
        ("process", ("pidfile", "-f", str(pid)),
         (f"{c}/check_procs", "-c", "1:", "-a", "bench_scheduler")),
    ]
    ours = [Spec(n, n, ("vigil-check", *v), 60, 10) for n, v, _ in pairs]
    theirs = [Spec(n, n, cmd, 60, 10) for n, _, cmd in pairs]
    return ours, theirs


def bare_passes(checks: list, passes: int, workers: bool, env: dict[str, str]
                ) -> list[float]:
    """CPU seconds of each pass, no sending (only the plugins and the scheduler)."""
    sched = Scheduler(checks, host_name="bench", site_name=None, outbox=None,
                      parallelism=4, env=env, workers=workers)
    try:
        return [sched.run_pass(everything=True).cpu_sec for _ in range(passes)]
    finally:
        sched.close()


def scheduler_pass(cfg: vconfig.Config, checks: list, passes: int,
                   workers: bool = True) -> list[dict[str, float]]:
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
                              env=plugin_env(cfg.source), workers=workers)
            try:
                for i in range(passes):
                    own0 = cpu(resource.RUSAGE_SELF)
                    total0 = sched.cpu_seconds()
                    t0 = time.perf_counter()
                    report = sched.run_pass(everything=True)
                    wall = time.perf_counter() - t0
                    own = cpu(resource.RUSAGE_SELF) - own0
                    kids = sched.cpu_seconds() - total0 - own
                    d = report.delivery
                    figures.append({"wall": wall, "own": own, "kids": kids,
                                    "sent": d.sent if d else 0})
                    if i == 0:
                        states = Counter(o.state for _, o in report.outcomes)
                        slow = sorted(report.outcomes, key=lambda so: -so[1].duration)[:5]
                        print(f"  states: {dict(states)}")
                        print("  slowest: " + ", ".join(f"{s.name} {o.duration:.2f}s ({o.state})"
                                                        for s, o in slow))
                    if i == passes - 1 and workers:
                        costly = sorted((o.cpu_sec or 0.0, s.name) for s, o in report.outcomes)
                        print("  most CPU (last pass, each child): " + ", ".join(
                            f"{n} {c * 1000:.0f} ms" for c, n in reversed(costly[-6:])))
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
    ap.add_argument("--sh-peer", action="store_true",
                    help="also run the commands in sequence from /bin/sh (costs a few s of CPU)")
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
    print("Vigil scheduler, plugins forked from the pre-imported worker (one pass, results "
          "sent to Debian nsca on loopback):")
    figs = scheduler_pass(cfg, checks, max(2, args.passes))
    report_passes(figs, period)
    print("The same pass with a Python start per plugin (before the worker):")
    old = scheduler_pass(cfg, checks, 1, workers=False)
    report_passes(old, period)
    env = plugin_env(cfg.source)
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as tmp:
        ours, theirs = shared_indicators(Path(tmp))
        n = max(2, args.passes)
        vigil_cpu = bare_passes(ours, n, True, env)[1:]  # the worker's start is paid once
        c_cpu = bare_passes(theirs, n, False, env)
    print(f"Reference peer: the {len(ours)} indicators both sets have ("
          f"{', '.join(s.name for s in ours)}), through the same scheduler, CPU per pass:")
    print(f"  Vigil plugins (worker): {fmt(vigil_cpu)}")
    print(f"  C Monitoring Plugins:   {fmt(c_cpu)}")
    if args.sh_peer:
        print("Peer: the same commands in sequence from /bin/sh under timeout:")
        peer = sequential_peer(checks, cfg)
        print(f"  wall {peer['wall']:.2f} s{' (cut at the cap)' if peer['capped'] else ''}, "
              f"CPU {peer['kids']:.2f} s")
    steady = min(figs[1:], key=lambda f: f["kids"] + f["own"])
    old_cpu = old[0]["kids"] + old[0]["own"]
    new_cpu = steady["kids"] + steady["own"]
    print(f"summary: {len(checks)} checks, pass CPU {new_cpu:.3f} s with the worker "
          f"(goal < 0.3 s: {'met' if new_cpu < 0.3 else 'NOT met'}) vs {old_cpu:.2f} s with a "
          f"Python start per plugin; shared indicators {min(vigil_cpu):.3f} s (Vigil) vs "
          f"{min(c_cpu):.3f} s (C plugins); pass wall {steady['wall']:.2f} s of {period} s")
    return 0


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3f} s" for v in values)


def report_passes(figs: list[dict[str, float]], period: float) -> None:
    for i, f in enumerate(figs, 1):
        print(f"  pass {i}: wall {f['wall']:.2f} s, CPU plugins {f['kids']:.3f} s + scheduler "
              f"{f['own']:.3f} s = {f['kids'] + f['own']:.3f} s; {int(f['sent'])} results sent "
              f"({100 * f['wall'] / period:.1f}% of the period)")


if __name__ == "__main__":
    sys.exit(main())
