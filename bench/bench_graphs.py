"""The central's graphs: CPU to store a perfdata batch, and to draw a graph.

    .venv/bin/python bench/bench_graphs.py [--services 30] [--minutes 15]

Builds a Nagios perfdata file as the central receives it (``--services``
services with two metrics each, one result a minute for ``--minutes``
minutes, i.e. a processing batch), then stores it three times into fresh RRD
folders:

- ours: ``python -m monitor.graphs`` as Nagios runs it (a Python start, parse,
  one ``rrdtool -`` pipe), and ``vigil monitor perfdata`` (the admin command,
  which loads the whole configuration first);
- in-process: :func:`monitor.graphs.process_file` alone (what the pipe costs);
- reference peer, same run: one ``rrdtool update`` process per metric and
  result, which is what a per-result perfdata command (PNP4Nagios' synchronous
  mode, ``process_perfdata.pl`` per check) amounts to in rrdtool work.

Then draws one 4-hour PNG with ``rrdtool graph`` (what graph.cgi runs per image).
CPU figures are user+sys of this process and its children.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import graphs  # noqa: E402

VIGIL = str(Path(sys.executable).parent / "vigil")


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def perfdata_text(services: int, minutes: int) -> str:
    now = int(time.time())
    lines = []
    for m in range(minutes):
        ts = now - 60 * (minutes - 1 - m)
        for s in range(services):
            lines.append(f"{ts}\tvigil-a1\tService {s}\t'rtt'=0.{s:03d}s;0.5;2;0; "
                         f"'count'={m * s}c;;;0;\n")
    return "".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=30)
    ap.add_argument("--minutes", type=int, default=15)
    args = ap.parse_args()
    text = perfdata_text(args.services, args.minutes)
    samples = args.services * args.minutes * 2
    with tempfile.TemporaryDirectory(prefix="bench-graphs-") as tmp:
        t = Path(tmp)
        conf = t / "vigil.conf"
        conf.write_text(f"[Site]\nState_Dir={t / 'state'}\n[Monitor]\nWeb_Dir={t / 'web'}\n")

        perf = t / "perf-ours"
        perf.write_text(text)
        c0, w0 = cpu(), time.monotonic()
        subprocess.run([sys.executable, "-m", "monitor.graphs", "--rrd-dir",
                        str(t / "web" / "rrd"), "--file", str(perf)], check=True, cwd=ROOT)
        ours_cpu, ours_wall = cpu() - c0, time.monotonic() - w0

        perf.write_text(text)
        c0 = cpu()
        subprocess.run([VIGIL, "-c", str(conf), "monitor", "perfdata", "--file", str(perf)],
                       check=True)
        cli_cpu = cpu() - c0

        perf.write_text(text)
        c0 = cpu()
        graphs.process_file(perf, graphs.Store(t / "rrd-inproc"))
        inproc_cpu = cpu() - c0

        # reference: one rrdtool process per metric and result
        rrd_dir = t / "rrd-ref"
        first = min(int(line.split("\t")[0]) for line in text.splitlines())
        c0, w0 = cpu(), time.monotonic()
        for line in text.splitlines():
            for s in graphs.parse_line(line):
                path = graphs.rrd_path(rrd_dir, s.host, s.service, s.label)
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    subprocess.run(["rrdtool", "create", str(path), "--start", str(first - 1),
                                    "--step", "60", "DS:value:GAUGE:600:U:U", *graphs.RRAS],
                                   check=True)
                subprocess.run(["rrdtool", "update", str(path), f"{s.ts}:{s.value}"],
                               check=True)
        ref_cpu, ref_wall = cpu() - c0, time.monotonic() - w0

        c0, w0 = cpu(), time.monotonic()
        png = graphs.graph_png(t / "web" / "rrd", "vigil-a1", "Service 1", "rtt", "4h", "s")
        graph_cpu, graph_wall = cpu() - c0, time.monotonic() - w0

    print(f"batch: {args.services} services x 2 metrics x {args.minutes} results = "
          f"{samples} samples")
    print(f"ours   python -m monitor.graphs (what Nagios runs): cpu {ours_cpu * 1000:7.0f} ms"
          f"  wall {ours_wall * 1000:7.0f} ms  ({ours_cpu / samples * 1e6:.0f} us/sample)")
    print(f"ours   vigil monitor perfdata (admin)  : cpu {cli_cpu * 1000:7.0f} ms")
    print(f"ours   in-process (no start)  : cpu {inproc_cpu * 1000:7.0f} ms")
    print(f"peer   rrdtool per sample     : cpu {ref_cpu * 1000:7.0f} ms  wall "
          f"{ref_wall * 1000:7.0f} ms  ({ref_cpu / samples * 1e6:.0f} us/sample)")
    print(f"graph  rrdtool graph 4h PNG   : cpu {graph_cpu * 1000:7.0f} ms  wall "
          f"{graph_wall * 1000:7.0f} ms  ({len(png)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
