"""Every service's perfdata kept in RRD files (Debian ``rrdtool``) and drawn on demand.

How the data gets here: Nagios appends one line per result to its
``service_perfdata_file`` (``TIME<TAB>HOST<TAB>SERVICE<TAB>PERFDATA``) and
every ``service_perfdata_file_processing_interval`` closes it and runs
``python -m monitor.graphs --rrd-dir D --file F`` (PNP4Nagios's "bulk mode"),
which moves the file aside, parses it and feeds every metric to its RRD
through one ``rrdtool -`` pipe: one small Python start (this module imports
only the standard library, unlike the ``vigil`` command, which loads every
room's options) and one rrdtool process per batch, whatever the number of
services. ``vigil monitor perfdata`` does the same for an admin.

Layout: ``<rrd_dir>/<host>/<service>/<label>.rrd`` (each name percent-encoded,
so a service description can never leave the folder) and ``units.json``
beside them. One-minute steps for a day, 5-minute for a week, 30-minute for
a month: the 4 h, day, week and month graphs.

Drawn on demand by ``graph.cgi`` (:func:`cgi_main`) rather than pre-rendered:
only graphs someone looks at cost CPU, and a graph is never older than the
data. rrdtool draws a PNG in tens of milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

log = logging.getLogger(__name__)

STEP_SEC = 60
HEARTBEAT_SEC = 600  # a gap over 10 min is drawn as a gap, not a line
RRAS = ("RRA:AVERAGE:0.5:1:1440", "RRA:AVERAGE:0.5:5:2016", "RRA:AVERAGE:0.5:30:1488",
        "RRA:MAX:0.5:1:1440", "RRA:MAX:0.5:5:2016", "RRA:MAX:0.5:30:1488")
PERIODS = {"4h": ("4 hours", 4 * 3600), "day": ("day", 86400), "week": ("week", 7 * 86400),
           "month": ("month", 31 * 86400)}

_METRIC = re.compile(r"""\s*('(?:[^']|'')+'|[^=\s]+)=         # label
                         (-?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?)  # value
                         ([a-zA-Z%/]*)((?:;[^;\s]*){0,4})""", re.X)  # UOM; thresholds


class GraphError(Exception):
    """rrdtool failed; the message carries its own words."""


@dataclass(frozen=True)
class Sample:
    ts: int
    host: str
    service: str
    label: str
    value: float
    uom: str


def parse_perfdata(text: str) -> list[tuple[str, float, str]]:
    """``'label'=value[UOM];warn;crit;min;max ...`` -> [(label, value, uom)]; junk skipped."""
    out = []
    pos = 0
    while pos < len(text):
        m = _METRIC.match(text, pos)
        if not m:
            nxt = text.find(" ", pos + 1)
            if nxt < 0:
                break
            pos = nxt
            continue
        label = m.group(1)
        if label.startswith("'") and label.endswith("'"):
            label = label[1:-1].replace("''", "'")
        try:
            value = float(m.group(2).replace(",", "."))
        except ValueError:
            value = None
        if value is not None and label:
            out.append((label, value, m.group(3)))
        pos = m.end()
    return out


def parse_line(line: str) -> list[Sample]:
    """One line of the perfdata file; a malformed line gives nothing (never raises)."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) < 4 or not parts[0].isdigit():
        return []
    ts, host, service, perf = int(parts[0]), parts[1], parts[2], "\t".join(parts[3:])
    return [Sample(ts, host, service, label, value, uom)
            for label, value, uom in parse_perfdata(perf)]


def safe_name(name: str) -> str:
    """A file name for any host, service or label: percent-encoded, never '.' or '..'."""
    enc = quote(name, safe=" -_")
    return "%2E" + enc[1:] if enc.startswith(".") else enc or "%00"


def rrd_path(rrd_dir: Path, host: str, service: str, label: str) -> Path:
    return rrd_dir / safe_name(host) / safe_name(service) / f"{safe_name(label)}.rrd"


def _rrd_arg(path: Path) -> str:
    # rrdtool separates DEF fields with ':'; percent-encoding already removed them.
    return str(path).replace(":", "\\:")


class Store:
    """Feeds samples to the RRD files through one ``rrdtool -`` process."""

    def __init__(self, rrd_dir: Path, rrdtool: str = "/usr/bin/rrdtool") -> None:
        self.rrd_dir = rrd_dir
        self.rrdtool = rrdtool

    def update(self, samples: Iterable[Sample]) -> int:
        """Write the samples; returns how many were stored. Older than an RRD's last
        update (a re-sent result) is skipped by rrdtool, not an error."""
        by_file: dict[Path, dict[int, float]] = defaultdict(dict)
        units: dict[Path, dict[str, str]] = defaultdict(dict)
        for s in samples:
            path = rrd_path(self.rrd_dir, s.host, s.service, s.label)
            by_file[path][s.ts] = s.value
            units[path.parent][s.label] = s.uom
        if not by_file:
            return 0
        commands = []
        for path, points in by_file.items():
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                first = min(points) - 1
                commands.append(" ".join(["create", _quote(path), "--start", str(first),
                                          "--step", str(STEP_SEC),
                                          f"DS:value:GAUGE:{HEARTBEAT_SEC}:U:U", *RRAS]))
            values = " ".join(f"{ts}:{v:.10g}" for ts, v in sorted(points.items()))
            commands.append(f"update {_quote(path)} --skip-past-updates {values}")
        self._pipe(commands)
        for folder, labels in units.items():
            _merge_units(folder, labels)
        return sum(len(p) for p in by_file.values())

    def _pipe(self, commands: list[str]) -> None:
        try:
            proc = subprocess.run([self.rrdtool, "-"], input="\n".join(commands) + "\n",
                                  capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GraphError(f"{self.rrdtool}: {exc}") from None
        errors = [ln for ln in proc.stdout.splitlines() if ln.startswith("ERROR")]
        for err in errors:
            log.warning("graphs: rrdtool: %s", err)
        if proc.returncode != 0:
            raise GraphError(f"{self.rrdtool} exited {proc.returncode}: {proc.stderr.strip()}")


def _quote(path: Path) -> str:
    # rrdtool's pipe mode splits on blanks but honours double quotes.
    return f'"{path}"'


def _merge_units(folder: Path, labels: Mapping[str, str]) -> None:
    path = folder / "units.json"
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    if all(known.get(k) == v for k, v in labels.items()):
        return
    known.update(labels)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def process_file(path: Path, store: Store) -> tuple[int, int]:
    """Take the perfdata file Nagios just closed, store it, delete it: (lines, samples).

    The file is first renamed to ``.processing``: a crash half-way leaves it
    there and the next run stores it again (rrdtool skips what it already has).
    """
    work = path.with_name(path.name + ".processing")
    if path.exists():
        if work.exists():  # the previous run died: keep its lines, add the new ones
            with open(work, "a", encoding="utf-8") as dst, \
                    open(path, encoding="utf-8", errors="replace") as src:
                dst.write(src.read())
            path.unlink()
        else:
            path.rename(work)
    if not work.exists():
        return 0, 0
    lines = 0
    samples: list[Sample] = []
    with open(work, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            lines += 1
            samples.extend(parse_line(line))
    stored = store.update(samples)
    work.unlink()
    return lines, stored


# --------------------------------------------------------------- drawing
def metrics_of(rrd_dir: Path, host: str, service: str) -> list[tuple[str, str]]:
    """(label, uom) of every metric kept for a service, by label."""
    folder = rrd_dir / safe_name(host) / safe_name(service)
    try:
        units = json.loads((folder / "units.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        units = {}
    if not isinstance(units, dict):
        units = {}
    return sorted((str(label), str(uom)) for label, uom in units.items()
                  if rrd_path(rrd_dir, host, service, str(label)).exists())


def graph_png(rrd_dir: Path, host: str, service: str, label: str, period: str,
              uom: str = "", rrdtool: str = "/usr/bin/rrdtool") -> bytes:
    title, seconds = PERIODS[period]
    path = rrd_path(rrd_dir, host, service, label)
    if not path.exists():
        raise GraphError(f"no data for {host}/{service}/{label}")
    unit = uom.replace("%", "%%")
    args = [rrdtool, "graph", "-", "--imgformat", "PNG", "--start", f"-{seconds}",
            "--end", "now", "--width", "600", "--height", "150",
            "--title", f"{host} / {service} / {label} - last {title}",
            "--vertical-label", uom or label,
            f"DEF:v={_rrd_arg(path)}:value:AVERAGE",
            f"DEF:m={_rrd_arg(path)}:value:MAX",
            f"LINE1:v#1f77b4:{label.replace(':', '_')}",
            f"GPRINT:v:LAST:last %.2lf{unit}",
            f"GPRINT:v:AVERAGE:avg %.2lf{unit}",
            f"GPRINT:m:MAX:max %.2lf{unit}"]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphError(f"{rrdtool} graph: {exc}") from None
    if proc.returncode != 0 or not proc.stdout.startswith(b"\x89PNG"):
        raise GraphError(f"{rrdtool} graph: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _esc(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def graph_page(rrd_dir: Path, host: str, service: str, script: str) -> str:
    """The HTML page of one service: each metric over 4 hours, a day, a week, a month."""
    metrics = metrics_of(rrd_dir, host, service)
    body = [f"<h1>{_esc(host)} / {_esc(service)}</h1>"]
    if not metrics:
        body.append("<p class='empty'>No performance data kept for this service yet.</p>")
    for label, uom in metrics:
        body.append(f"<h2 class='metric'>{_esc(label)}{' (' + _esc(uom) + ')' if uom else ''}"
                    "</h2>")
        for period, (title, _) in PERIODS.items():
            q = urlencode({"host": host, "service": service, "metric": label,
                           "period": period})
            body.append(f"<h3>last {title}</h3><img class='graph' alt='{_esc(label)} over "
                        f"{title}' src='{_esc(script)}?{_esc(q)}'>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Graphs: "
            f"{_esc(host)} / {_esc(service)}</title></head><body>"
            "<nav><a href='/'>Dashboard</a></nav>" + "\n".join(body) + "</body></html>")


def cgi_main(rrd_dir: str, rrdtool: str = "/usr/bin/rrdtool") -> int:
    """graph.cgi: ``?host=H&service=S`` the page, ``&metric=M&period=P`` one PNG."""
    out = sys.stdout.buffer
    q = parse_qs(os.environ.get("QUERY_STRING", ""), keep_blank_values=True)

    def one(name: str) -> str:
        return (q.get(name) or [""])[0]

    host, service, metric, period = one("host"), one("service"), one("metric"), one("period")
    root = Path(rrd_dir)
    try:
        if not host or not service:
            raise GraphError("graph.cgi needs host= and service=")
        if not metric:
            page = graph_page(root, host, service,
                              os.environ.get("SCRIPT_NAME", "graph.cgi")).encode()
            out.write(b"Content-Type: text/html; charset=utf-8\r\n\r\n" + page)
            return 0
        if period not in PERIODS:
            raise GraphError(f"period must be one of {', '.join(PERIODS)}")
        uom = dict(metrics_of(root, host, service)).get(metric, "")
        png = graph_png(root, host, service, metric, period, uom, rrdtool)
        out.write(b"Content-Type: image/png\r\nCache-Control: max-age=60\r\n\r\n" + png)
    except GraphError as exc:
        out.write(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"
                  + str(exc).encode() + b"\n")
    out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m monitor.graphs --rrd-dir D --file F``: what Nagios runs per batch."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m monitor.graphs",
                                 description="Store a Nagios perfdata file in RRD files.")
    ap.add_argument("--rrd-dir", required=True, type=Path)
    ap.add_argument("--file", required=True, type=Path)
    ap.add_argument("--rrdtool", default="/usr/bin/rrdtool")
    args = ap.parse_args(argv)
    try:
        process_file(args.file, Store(args.rrd_dir, args.rrdtool))
    except (OSError, GraphError) as exc:
        print(f"monitor.graphs: {args.file}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
