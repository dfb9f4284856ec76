#!/usr/bin/env python3
"""Authorizations and committed accountings per second: Vigil vs FreeRADIUS.

Vigil with one engine process and with N (``[Radius] Processes``), FreeRADIUS
with rlm_sql on the same durable MariaDB (its own schema: the C server that
also stores every record before answering), FreeRADIUS ``files`` (no
database: the ceiling). Requests/s, CPU seconds per 1,000 requests of the
server processes and of mariadbd, ratios, and p99 at 1,000 requests/s.

Same run, same machine, same load generator for every server. Vigil runs on
a throw-away MariaDB (every accounting is committed before it is answered);
FreeRADIUS runs the `files` module (no database: the speed ceiling of a C
RADIUS server here). One-process servers are pinned to CPU 0 and the load
generator to CPU 1; Vigil's N processes may run on both CPUs. The last
column is the load generator's own CPU per 1,000 requests.

The load comes from ``--senders`` sockets at once (16 by default), each with
its share of the request files (radclient's format) and ``--parallel /
--senders`` requests in flight, for every server in the table. Each server
is measured at every depth of ``--parallel`` (128, 256 and 512 by default) and
its best rate is its figure: a closed-loop sender finds a server's capacity
only at a depth that saturates it (all the rows are printed). FreeRADIUS's
sockets get the receive buffer Vigil's engine asks for (4 MB), and the
kernel's drops at full receive buffers are counted for every row. One socket
is hashed by SO_REUSEPORT to one engine process (a real site has many
gateways, each its own socket), so a single socket would measure one busy
process, not N. How the requests spread over Vigil's processes is printed
from their counters files.

The sockets belong to one bench/radius_load.py process by default, or to
one radclient process each (``--sender radclient``, Debian's
freeradius-utils). radclient walks all its requests after every answer and
polls with short timeouts: its CPU per request grows with the server's
latency (0.39 s per 1,000 authorizations against Vigil's group commit, 0.065
against FreeRADIUS files, in one run), until it fills the core mariadbd
needs too and slows most the server that answers latest.

Then, once mariadbd has written back the pages the throughput legs left
dirty (``settle``), a paced Python sender offers 1,000 requests/s for 10 s
to Vigil and prints the latency percentiles, and beside them how long the database's disk
took to flush meanwhile (bench/disk_probe.py): every Access-Accept waits for
a flush, and on a virtual disk a flush sometimes takes hundreds of ms. Right
after it, the floor under that p99: one bare durable transaction from a
client doing nothing else, on the same database (bench/db_floor.py).

The 1,000 accounts belong to one customer (``--customers N`` spreads them):
every reservation also counts its call on its customer's row.

    .venv/bin/python bench/bench_radius.py [--requests 20000] [--sqlite] [--senders 4]
    # the figures for a closing note: five passes, FreeRADIUS first in every
    # other one, then the median and range of each figure (one pass is one
    # draw of this VM's speed, which moves by up to 2.5x within minutes)
    .venv/bin/python bench/bench_radius.py --rounds 5
    # while iterating: Vigil alone, one process, a [Radius] option to compare
    .venv/bin/python bench/bench_radius.py --requests 5000 --vigil-only --one-process \
        --radius Commit_Batch=256
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from db_floor import FloorFigures, bare_transactions  # noqa: E402
from disk_probe import FsyncFigures, FsyncProbe  # noqa: E402
from machine_speed import interpreter, reference_ms  # noqa: E402

from billing.testing import BillingSandbox  # noqa: E402
from vigil.testing.freeradius import FreeRadius, SqlBackend, start_freeradius  # noqa: E402
from vigil.testing.mariadb import MariaDB  # noqa: E402

SECRET = "benchsecret"
ACCOUNTS = 1000


def provision_doc(path: Path, customers: int = 1) -> Path:
    """The bench's site: one gateway, ``ACCOUNTS`` credit accounts of
    ``customers`` customers (account k belongs to customer k mod n), none of
    them with a credit limit or a call limit of its own."""
    lines = ["nodes:", "  - {name: GW, nas_ip: 10.0.0.1, radius_source_ip: 127.0.0.1, "
             f"radius_secret: {SECRET}}}",
             "tariffs:", "  - name: T", "    rates:",
             '      - {prefix: "1", interval_first: 60, interval_next: 6, price_first: "0.02", '
             'price_next: "0.02"}',
             '      - {prefix: "44", interval_first: 1, interval_next: 1, price_first: "0.03", '
             'price_next: "0.03"}',
             "  - name: V", "    rates:",
             '      - {prefix: "1", interval_first: 1, interval_next: 1, price_first: "0.01", '
             'price_next: "0.01"}',
             "products:", "  - name: P", "    accessibility:", "      - {node: GW, tariff: T}",
             "customers:", *(f"  - {{name: C{k}, credit_limit: null}}"
                             for k in range(customers)),
             "vendors:", "  - {name: V1}",
             "connections:", "  - {name: V1c, vendor: V1, remote_ip: ANY, tariff: V}",
             "accounts:"]
    for i in range(ACCOUNTS):
        lines.append(f'  - {{account_id: "acc{i:04d}", customer: C{i % customers}, '
                     f'product: P, billing_model: credit, credit_limit: "1000000"}}')
    path.write_text("\n".join(lines) + "\n")
    return path


def authz_file(path: Path, n: int, tag: str, account: str | None = None, first: int = 0
               ) -> Path:
    """``n`` authorizations, one per account in turn from account ``first``,
    or all of ``account``."""
    with open(path, "w") as f:
        for i in range(n):
            user = account or f"acc{(first + i) % ACCOUNTS:04d}"
            f.write(f'NAS-IP-Address = 10.0.0.1\nUser-Name = "{user}"\n'
                    f'User-Password = "x"\nCalled-Station-Id = "1212555{i % 10000:04d}"\n'
                    f'Calling-Station-Id = "{user}"\n'
                    f'h323-conf-id = "{tag}-{i}"\n'
                    f'Cisco-AVPair = "h323-ivr-out=PortaBilling_Ignore_Password:YES"\n\n')
    return path


def acct_file(path: Path, n: int, tag: str, first: int = 0) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            user = f"acc{(first + i) % ACCOUNTS:04d}"
            f.write(f'NAS-IP-Address = 10.0.0.1\nUser-Name = "{user}"\n'
                    f'Acct-Status-Type = Stop\nAcct-Session-Id = "{tag}-{i}"\n'
                    f'Acct-Session-Time = {30 + i % 300}\nCalled-Station-Id = "1212555{i:04d}"\n'
                    f'Calling-Station-Id = "{user}"\n'
                    f'h323-conf-id = "{tag}-{i}"\nh323-call-origin = "originate"\n'
                    f'h323-remote-address = "192.0.2.{i % 200}"\n\n')
    return path


def _radclient_counts(stdout: str) -> tuple[int, int]:
    """Requests answered and failed, from one radclient's summary (-s)."""
    ok = failed = 0
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("Packets received"):
            continue
        if line.startswith("Accepted") or line.startswith("Total approved"):
            ok += int(line.split(":")[1])
        elif line.startswith("Rejected") or line.startswith("Lost") or \
                line.startswith("Total denied") or line.startswith("Total lost"):
            failed += int(line.split(":")[1])
    if "Accepted" not in stdout and "approved" not in stdout:
        # accounting summaries count responses as "Passed filter"
        for line in stdout.splitlines():
            if "Passed filter" in line:
                ok += int(line.split(":")[1])
    return ok, failed


@dataclass
class Load:
    """What one sending of request files gave: requests answered and failed,
    seconds from the first send to the last answer, and the CPU seconds the
    load generator itself spent (it shares the machine with the servers)."""

    answered: int
    seconds: float
    failed: int
    sender_cpu: float


def send_load(sender: str, port: int, kind: str, files: list[Path], secret_file: Path,
              senders: int = 1, parallel: int = 128, cpus: str = "1") -> Load:
    """Sends the files through ``senders`` sockets at once (so SO_REUSEPORT can
    hash them to different engine processes, as many gateways would be), each
    sending its share of the files back to back with ``parallel / senders``
    requests in flight: one bench/radius_load.py process holding every socket,
    or one radclient process per socket."""
    shares = [share for share in (files[i::senders] for i in range(senders)) if share]
    in_flight = max(1, parallel // len(shares))
    if sender == "python":
        cmd = ["taskset", "-c", cpus, sys.executable, str(ROOT / "bench" / "radius_load.py"),
               "--port", str(port), "--kind", kind, "--secret-file", str(secret_file),
               "--in-flight", str(in_flight), "--tries", "3", "--timeout", "3"]
        for share in shares:
            cmd += ["--share", ",".join(str(f) for f in share)]
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        return Load(out["answered"], out["seconds"], out["failed"], out["cpu_seconds"])

    def send(share: list[Path]) -> tuple[int, int]:
        ok = failed = 0
        for f in share:  # one radclient at a time per sender, its files back to back
            r = subprocess.run(["taskset", "-c", cpus, "radclient", "-d",
                                str(ROOT / "etc/radius"), "-q", "-s", "-p", str(in_flight),
                                "-r", "3", "-t", "3", "-f", str(f), "-S", str(secret_file),
                                f"127.0.0.1:{port}", kind], capture_output=True, text=True)
            o, x = _radclient_counts(r.stdout)
            ok, failed = ok + o, failed + x
        return ok, failed

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(shares)) as pool:
        counts = list(pool.map(send, shares))
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    return Load(sum(c[0] for c in counts), seconds, sum(c[1] for c in counts), cpu)


RECV_BUFF = 4 * 1024 * 1024


def freeradius(sql: SqlBackend | None = None) -> FreeRadius:
    users = "".join(f'"acc{i:04d}" Auth-Type := Accept\n\th323-credit-time = "3600"\n\n'
                    for i in range(ACCOUNTS))
    # the receive buffer Vigil's engine asks for (billing/server.py): with
    # the kernel's default, 256 requests in flight overflowed FreeRADIUS's
    # sockets, and its figure became the sender's retransmission timer
    return start_freeradius(SECRET, users, threads=4, max_threads=8, cpu=0, cleanup_delay=5,
                            sql=sql, recv_buff=RECV_BUFF)


def rlm_sql_schema(db: MariaDB, name: str) -> SqlBackend:
    """FreeRADIUS's own MySQL schema (Debian freeradius-mysql) and its users."""
    db.create_database(name)
    schema = Path("/etc/freeradius/3.0/mods-config/sql/main/mysql/schema.sql").read_text()
    conn = db.connect(name)
    try:
        with conn.cursor() as cur:
            for stmt in schema.split(";"):
                body = "\n".join(x for x in stmt.splitlines() if not x.strip().startswith("#"))
                if body.strip():
                    cur.execute(body)
            cur.executemany("INSERT INTO radcheck (username, attribute, op, value) "
                            "VALUES (%s, 'Cleartext-Password', ':=', 'x')",
                            [(f"acc{i:04d}",) for i in range(ACCOUNTS)])
    finally:
        conn.close()
    return SqlBackend(db.port, name)


def tree_pids(root: int) -> list[int]:
    """A process and all its descendants (Vigil's engine processes)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def udp_receive_buffer_drops() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was
    full, machine-wide (``RcvbufErrors`` in /proc/net/snmp); -1 if unknown.
    A server that drops requests there is measured by the sender's
    retransmission timer (3 s), not by its own speed."""
    try:
        rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
                if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return -1


def measure(sender: str, port: int, kind: str, files: list[Path], secret_file: Path,
            server_pid: int, db_pid: int | None, cpus: str, senders: int, parallel: int
            ) -> dict[str, float]:
    pids = tree_pids(server_pid)
    s0, d0 = cpu_seconds(pids), cpu_seconds([db_pid]) if db_pid else 0.0
    u0 = udp_receive_buffer_drops()
    load = send_load(sender, port, kind, files, secret_file, senders, parallel, cpus)
    s1, d1 = cpu_seconds(pids), cpu_seconds([db_pid]) if db_pid else 0.0
    u1 = udp_receive_buffer_drops()
    per_k = 1000 / max(load.answered, 1)
    return {"rps": load.answered / load.seconds, "failed": load.failed,
            "server_cpu": (s1 - s0) * per_k, "db_cpu": (d1 - d0) * per_k,
            "sender_cpu": load.sender_cpu * per_k,
            "udp_drops": u1 - u0 if u0 >= 0 and u1 >= 0 else -1}


SETTLE_PAGES = 200  # dirty InnoDB pages left: the write-back of the legs is over
SETTLE_HISTORY = 1000  # undo records left to purge: the purge of the legs is over
SETTLE_MAX_SEC = 90.0


@dataclass
class Settled:
    dirty: tuple[int, int]  # InnoDB's dirty pages before and after
    history: tuple[int, int]  # undo records not yet purged, before and after
    seconds: float

    def line(self) -> str:
        return (f"mariadbd wrote back the legs' dirty pages ({self.dirty[0]} -> "
                f"{self.dirty[1]}) and purged their history ({self.history[0]} -> "
                f"{self.history[1]} undo records) in {self.seconds:.1f} s")


def settle(db: MariaDB) -> Settled:
    """Wait until mariadbd has written back what the throughput legs left in
    its buffer pool, and purged the old row versions their transactions
    left (InnoDB's history list).

    Why: the paced run offers 1,000 requests/s for the p99 of a server at
    that load, but it came right after legs that committed 80,000 records
    at up to 9,000/s; InnoDB's page cleaner was still writing those pages
    back, and the disk's flushes took 45-74 ms in four of five rounds
    (the fsync probe's maximum), against 5-9 ms once the writing was done.
    A site at 1,000 requests/s does not have that backlog. The cleaner is
    asked to write everything back at once (``innodb_max_dirty_pages_pct``
    0, its setting put back afterwards), then this waits for it."""
    def state() -> tuple[int, int]:
        dirty = db.execute("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
        history = db.execute("SELECT `COUNT` FROM information_schema.INNODB_METRICS "
                             "WHERE NAME = 'trx_rseg_history_len'")
        return (int(dirty[0][1]) if dirty else 0), (int(history[0][0]) if history else 0)

    before = state()
    pct = db.execute("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")[0][0]
    t0 = time.monotonic()
    db.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
    try:
        now = before
        while (now[0] > SETTLE_PAGES or now[1] > SETTLE_HISTORY) and \
                time.monotonic() - t0 < SETTLE_MAX_SEC:
            time.sleep(0.5)
            now = state()
    finally:
        db.execute(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(pct)}")
    return Settled((before[0], now[0]), (before[1], now[1]), time.monotonic() - t0)


def paced_latency(box: BillingSandbox, rate: int, seconds: float, tag: str = "lat",
                  cpu: int | None = 1) -> list[float]:
    """Offer ``rate`` authorizations/s; return latencies in ms of those answered.
    ``tag`` starts every conf-id: a new call each (the same one again would
    be a re-authorization, which gives the old reservation back first).

    The sending thread runs on ``cpu`` (CPU 1, the throughput senders' own),
    not beside the one-process engine on CPU 0: unpinned, the scheduler
    may put this Python loop on the engine's core, and the p99 would
    measure the two of them taking turns."""
    before = os.sched_getaffinity(0)
    if cpu is None or cpu not in before:
        return _paced(box, rate, seconds, tag)
    os.sched_setaffinity(0, {cpu})  # this thread only (Linux)
    try:
        return _paced(box, rate, seconds, tag)
    finally:
        os.sched_setaffinity(0, before)


# Linux's option number (asm-generic/socket.h, x86 and arm alike): Python's
# socket module does not name it. Its control message has the same number
# and carries a struct timespec.
SO_TIMESTAMPNS = 35


def _paced(box: BillingSandbox, rate: int, seconds: float, tag: str) -> list[float]:
    """Each latency is from just before ``sendto`` to the moment the kernel
    took the reply in (``SO_TIMESTAMPNS``), not to the moment this Python
    loop got round to reading it. Why: with two engine processes this
    thread shares CPU 1 with one of them and with mariadbd, and a reply
    read late because the loop was not scheduled is the sender's delay,
    not the server's (measured side by side: 0.2-1.5 ms at the median,
    nothing at the p99)."""
    c = box.client(SECRET)
    total = int(rate * seconds)
    packets = []
    for i in range(total):
        req = c.auth_packet(i % 256)
        req["User-Name"] = f"acc{i % ACCOUNTS:04d}"
        req["NAS-IP-Address"] = "10.0.0.1"
        req["Called-Station-Id"] = f"44207{i:06d}"
        req["h323-conf-id"] = f"{tag}-{i}"
        req["Cisco-AVPair"] = ["h323-ivr-out=PortaBilling_Ignore_Password:YES"]
        packets.append(req.RequestPacket())
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    for s in socks:
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    index = {s: k for k, s in enumerate(socks)}
    sent: dict[tuple[int, int], int] = {}  # (socket, RADIUS id) -> CLOCK_REALTIME ns
    lat: list[float] = []
    t0 = time.perf_counter()
    i = 0
    while True:
        now = time.perf_counter()
        due = min(total, int((now - t0) * rate) + 1)
        while i < due:
            k = (i // 256) % len(socks)
            sent[(k, packets[i][1])] = time.time_ns()
            socks[k].sendto(packets[i], ("127.0.0.1", box.auth_port))
            i += 1
        r, _, _ = select.select(socks, [], [], 0.0005)
        for s in r:
            while True:
                try:
                    data, anc, _flags, _addr = s.recvmsg(4096, 64)
                except BlockingIOError:
                    break
                key = (index[s], data[1])
                if key in sent:
                    lat.append((_arrival_ns(anc) - sent.pop(key)) / 1e6)
        if i >= total and (not sent or time.perf_counter() - t0 > seconds + 3):
            break
    for s in socks:
        s.close()
    return lat


def _arrival_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time (CLOCK_REALTIME) of a datagram, or now."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("@qq", data[:16])
            return sec * 1_000_000_000 + nsec
    return time.time_ns()


def engine_counters(box: BillingSandbox) -> dict[int, dict[str, int]]:
    """Each live engine process's counters, by its index."""
    from billing.stats_files import read_engine

    time.sleep(1.5)  # the counters are written every second here (BillingSandbox)
    names = ("access_requests", "accounting_requests", "account_lookups")
    return {p.index: {n: p.counter(n) for n in names}
            for p in read_engine(box.state, max_age=10).live}


def spread(box: BillingSandbox, before: dict[int, dict[str, int]]) -> str:
    """How the requests spread over the engine processes, and how many of the
    paced run's (since ``before``) waited for their account to be read from
    the database: after a warm-up that reached every process, none should."""
    return ", ".join(
        f"process {k}: {c['access_requests'] + c['accounting_requests']} "
        f"({c['account_lookups'] - before.get(k, {}).get('account_lookups', 0)} "
        "account look-ups in the paced run)"
        for k, c in engine_counters(box).items()) or "(no counters)"


def tools_here(sender: str) -> bool:
    if shutil.which("taskset") and (sender == "python" or shutil.which("radclient")):
        return True
    print("taskset (and radclient for --sender radclient) are needed (make setup)")
    return False


def workdir(name: str) -> tuple[Path, Path]:
    """A scratch folder and the shared secret's file in it (0600: radclient -S)."""
    work = Path(tempfile.mkdtemp(prefix=f"vigil-bench-{name}-"))
    secret_file = work / "secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    return work, secret_file


def durable_mariadb(name: str) -> MariaDB:
    """A throw-away MariaDB that flushes at every commit, as production does."""
    return MariaDB(name, server_id=9,
                   extra_args=["--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1"])


def start_vigil(db: MariaDB | None, work: Path, tag: str, processes: int, radius: str = "",
                customers: int = 1) -> BillingSandbox:
    if db is not None:
        db.create_database(f"billing_{tag}")
    box = BillingSandbox(db.url(f"billing_{tag}") if db else None, base=work / f"vigil-{tag}",
                         provision=provision_doc(work / f"bench-{tag}.yaml", customers),
                         extra="[Fraud_Detection]\nActive=No\n", processes=processes,
                         radius=radius)
    box.config.write_text(box.config.read_text().replace("Level=DEBUG", "Level=WARNING"))
    box.prepare()
    env = dict(os.environ, VIGIL_CONF=str(box.config))
    cpus = "0" if processes == 1 else "0,1"
    box.proc = subprocess.Popen(["taskset", "-c", cpus, sys.executable, "-m", "vigil.cli",
                                 "radiusd"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not box.selftest(timeout=0.5):
        if time.monotonic() > deadline:
            raise RuntimeError("vigil radiusd did not start")
    return box


def best_of(results: list[dict[str, float]]) -> dict[str, float]:
    """A server's figure over the depths tried: its highest rate among those
    with every request answered (a failed request is not a result), else
    the highest. Each server gets the same depths and its own best: a
    closed-loop sender measures a server's capacity only at a depth that
    saturates it, and that depth is not the same for a C server with a
    thread per request and for an engine that commits in groups (with 128
    in flight, two Vigil processes ran at about half a core each, and their
    CPU per request fell by a third with 256)."""
    clean = [r for r in results if not r["failed"]] or results
    return max(clean, key=lambda r: r["rps"])


@dataclass
class Round:
    """One pass over every server: requests/s and CPU per leg, and Vigil's
    latency and the disk meanwhile."""

    number: int
    speed_ms: float  # bench/machine_speed.py at the start of the round
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)
    disk: dict[str, FsyncFigures] = field(default_factory=dict)
    per_process: dict[str, str] = field(default_factory=dict)
    by_depth: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    settled: dict[str, Settled] = field(default_factory=dict)
    floor: dict[str, FloorFigures] = field(default_factory=dict)
    paced_cpu: dict[str, float] = field(default_factory=dict)  # engine CPU s per 1,000

    def ratio(self, name: str, label: str) -> float | None:
        ref = self.results.get(f"freeradius rlm_sql {label}")
        mine = self.results.get(f"{name} {label}")
        if not ref or not mine or not ref["rps"]:
            return None
        return mine["rps"] / ref["rps"]


@dataclass
class Bench:
    """What every round shares: the options, the request files' layout, the
    database and the shared secret."""

    args: argparse.Namespace
    work: Path
    secret_file: Path
    db: MariaDB
    per_file: int
    n_files: int
    warmups: int = 0  # how many warm-ups so far: each its own calls

    @property
    def runs(self) -> list[tuple[str, int]]:
        runs = [("vigil 1 process", 1), (f"vigil {self.args.processes} processes",
                                          self.args.processes)]
        return runs[:1] if self.args.one_process else runs

    def start(self, k: int) -> int:
        # The senders' files run at once: each starts at its own account, as
        # gateways' traffic does, instead of all walking the accounts in step
        # (every sender asking for the same account at the same moment).
        return k * ACCOUNTS // max(1, min(self.n_files, self.args.senders)) % ACCOUNTS

    def files(self, tag: str) -> tuple[list[Path], list[Path]]:
        """Authorization and accounting files, their call ids tagged (every
        leg of every round its own calls, on a database that keeps them)."""
        authz = [authz_file(self.work / f"z{tag}-{k}.txt", self.per_file, f"z{tag}-{k}",
                            first=self.start(k)) for k in range(self.n_files)]
        acct = [acct_file(self.work / f"a{tag}-{k}.txt", self.per_file, f"a{tag}-{k}",
                          first=self.start(k)) for k in range(self.n_files)]
        return authz, acct

    def warmup(self, port: int) -> None:
        """Every account through every sender's socket, unmeasured. Why every
        socket: SO_REUSEPORT hashes each socket to one engine process, and
        each process caches only the accounts its own sockets bring. One
        file through one socket warmed one process of two; the other met
        every account first in the measured runs, each a database look-up
        (the engines' ``account_lookups`` counters showed it). Each warm-up
        its own call ids: the same ones again would be re-authorizations."""
        if self.args.no_warmup:
            return
        self.warmups += 1
        n = max(1, self.args.senders)
        files = [authz_file(self.work / f"warm{self.warmups}-{k}.txt", ACCOUNTS,
                            f"w{self.warmups}-{k}", first=k * ACCOUNTS // n % ACCOUNTS)
                 for k in range(n)]
        send_load(self.args.sender, port, "auth", files, self.secret_file,
                  n, self.args.parallel[0])

    def measure(self, rnd: Round, name: str, ports: tuple[int, int], tag: str,
                server_pid: int, db_pid: int | None) -> None:
        """The warm-up, then the authorizations and the accountings of one
        server at each depth of ``--parallel``, into ``rnd`` under ``name``:
        its best rate of each kind is its figure (see ``best_of``)."""
        self.warmup(ports[0])
        for depth in self.args.parallel:
            authz, acct = self.files(f"{tag}d{depth}")
            for label, port, files, kind in (("authorization", ports[0], authz, "auth"),
                                             ("accounting", ports[1], acct, "acct")):
                result = measure(self.args.sender, port, kind, files, self.secret_file,
                                 server_pid, db_pid, "1", self.args.senders, depth)
                result["depth"] = depth
                rnd.by_depth.setdefault(f"{name} {label}", []).append(result)
                rnd.results[f"{name} {label}"] = best_of(rnd.by_depth[f"{name} {label}"])

    def vigil(self, rnd: Round, n: int, name: str, procs: int) -> None:
        db = None if self.args.sqlite else self.db
        box = start_vigil(db, self.work, f"r{rnd.number}v{n}", procs,
                          "".join(f"{o}\n" for o in self.args.radius), self.args.customers)
        try:
            assert box.proc is not None
            self.measure(rnd, name, (box.auth_port, box.acct_port), f"{rnd.number}v{n}",
                         box.proc.pid, self.db.proc.pid if self.db.proc else None)
            if not self.args.sqlite:
                rnd.settled[name] = settle(self.db)
                # accounts unused for Account_Cache_sec (10) left the engine's
                # memory meanwhile: every one is read again first, unmeasured
                self.warmup(box.auth_port)
            # the disk's own flush times beside it: a reply waits for one
            engine = tree_pids(box.proc.pid)
            counters0 = engine_counters(box)
            cpu0 = cpu_seconds(engine)
            with FsyncProbe(self.db.base if not self.args.sqlite else self.work) as probe:
                rnd.latency[name] = paced_latency(box, 1000, 10.0)
            if rnd.latency[name]:
                rnd.paced_cpu[name] = ((cpu_seconds(engine) - cpu0) * 1000
                                       / len(rnd.latency[name]))
            rnd.disk[name] = probe.result
            if not self.args.sqlite:
                # the reference for the p99: the same database, at once after
                rnd.floor[name] = bare_transactions(
                    partial(pymysql.connect, host="127.0.0.1", port=self.db.port, user="root",
                            database=self.db.create_database("bench_floor"),
                            autocommit=False))
            rnd.per_process[name] = spread(box, counters0)
        finally:
            box.stop()

    def peer(self, rnd: Round, name: str, backend: SqlBackend | None) -> None:
        fr = freeradius(backend)
        try:
            assert fr.proc is not None  # started
            self.measure(rnd, name, (fr.auth_port, fr.acct_port), f"{rnd.number}f{name[-3:]}",
                         fr.proc.pid, self.db.proc.pid if backend and self.db.proc else None)
        finally:
            fr.stop()

    def round(self, number: int) -> Round:
        """Every server once. Odd rounds run FreeRADIUS first: the machine's
        speed drifts within minutes, and alternating the order keeps the
        drift from favouring whichever server always ran first."""
        rnd = Round(number, reference_ms())
        legs: list[Callable[[], None]] = [partial(self.vigil, rnd, n, name, procs)
                                          for n, (name, procs) in enumerate(self.runs)]
        if not self.args.vigil_only:
            # rlm_sql's own schema each round: its radacct keeps the Stops
            backend = rlm_sql_schema(self.db, f"radius{number}")
            peers: list[Callable[[], None]] = [
                partial(self.peer, rnd, "freeradius rlm_sql", backend),
                partial(self.peer, rnd, "freeradius files", None)]
            legs = legs + peers if number % 2 == 0 else peers + legs
        for leg in legs:
            leg()
        return rnd


def print_round(bench: Bench, rnd: Round) -> None:
    args = bench.args
    store = "SQLite" if args.sqlite else "MariaDB (durable: flush at commit, sync binlog)"
    load = ("radclient senders" if args.sender == "radclient"
            else "sockets of one bench/radius_load.py sender")
    print(f"\nRADIUS throughput{f', round {rnd.number + 1}' if args.rounds > 1 else ''} "
          f"(reference loop {rnd.speed_ms:.1f} ms of CPU, bench/machine_speed.py; "
          f"{interpreter()}), "
          f"{bench.per_file * bench.n_files} requests each"
          f"{'' if args.no_warmup else ' after every account through every socket unmeasured'}, "
          f"{args.senders} {load} "
          f"({' and '.join(map(str, args.parallel))} in flight in all, each server's best "
          "counted) on CPU 1; one-process servers on CPU 0, "
          f"{args.processes} Vigil processes on CPUs 0-1; Vigil on {store}, rlm_sql on the "
          f"same MariaDB; {ACCOUNTS} accounts of {args.customers} "
          f"customer{'s' if args.customers > 1 else ''}")
    print(f"{'server / request':44} {'req/s':>8} {'failed':>7} {'CPU s/1k srv':>13} "
          f"{'CPU s/1k db':>12} {'CPU s/1k load':>14} {'rcvbuf drops':>13} "
          f"{'in flight':>10}")
    several = len(args.parallel) > 1
    for k, best in rnd.results.items():
        for r in rnd.by_depth.get(k, [best]):
            drops = int(r.get("udp_drops", -1))
            mark = " best" if several and r is best else ""
            print(f"{k:44} {r['rps']:8.0f} {int(r['failed']):7d} {r['server_cpu']:13.3f} "
                  f"{r['db_cpu']:12.3f} {r['sender_cpu']:14.3f} "
                  f"{drops if drops >= 0 else '?':>13} {int(r['depth']):>10}{mark}")
    for label in ("authorization", "accounting"):
        for name, _ in bench.runs:
            ratio = rnd.ratio(name, label)
            if ratio is not None:
                print(f"ratio {name} / freeradius rlm_sql, {label}: {ratio:.2f}")
    for name, line in rnd.per_process.items():
        print(f"{name}: requests per engine process (authorizations + accountings + "
              f"latency run): {line}")
    for name, lat in rnd.latency.items():
        if lat:
            q = statistics.quantiles(lat, n=100)
            print(f"{name}: authorizations offered at 1000/s for 10 s: {len(lat)} answered, "
                  f"p50 {q[49]:.2f} ms, p90 {q[89]:.2f} ms, p99 {q[98]:.2f} ms, "
                  f"max {max(lat):.2f} ms")
            if name in rnd.paced_cpu:
                # per request, against the CPU s/1k of the saturated legs above:
                # a batch's fixed costs and the threads' hand-overs, paid by
                # batches of one or two at this pace
                print(f"{name}: the engine's CPU meanwhile: {rnd.paced_cpu[name]:.3f} s per "
                      f"1,000 ({rnd.paced_cpu[name]:.0%} of a core at 1,000/s)")
            if name in rnd.settled:
                print(f"{name}: before it, {rnd.settled[name].line()}")
            print(f"{name}: meanwhile, {rnd.disk[name].line()}")
            if name in rnd.floor:
                print(f"{name}: right after, {rnd.floor[name].line()}")


def print_summary(bench: Bench, rounds: list[Round]) -> None:
    """Over several rounds: the median of each figure and its range, since a
    single round is one draw of the machine's speed."""
    print(f"\nOver {len(rounds)} rounds (median, and lowest-highest; reference loop "
          f"{min(r.speed_ms for r in rounds):.1f}-{max(r.speed_ms for r in rounds):.1f} ms):")
    for key in rounds[0].results:
        rps = [r.results[key]["rps"] for r in rounds if key in r.results]
        cpu = [r.results[key]["server_cpu"] for r in rounds if key in r.results]
        print(f"{key:44} {statistics.median(rps):8.0f} req/s ({min(rps):.0f}-{max(rps):.0f}), "
              f"server CPU {statistics.median(cpu):.3f} s/1k")
    for label in ("authorization", "accounting"):
        for name, _ in bench.runs:
            ratios = [x for x in (r.ratio(name, label) for r in rounds) if x is not None]
            if ratios:
                print(f"ratio {name} / freeradius rlm_sql, {label}: "
                      f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}); "
                      f"at least 1.5 in {sum(x >= 1.5 for x in ratios)} of {len(ratios)}")
    for name, _ in bench.runs:
        p99 = [statistics.quantiles(r.latency[name], n=100)[98] for r in rounds
               if len(r.latency.get(name, [])) > 1]
        if p99:
            print(f"{name}: p99 at 1000/s {statistics.median(p99):.2f} ms "
                  f"({min(p99):.2f}-{max(p99):.2f}); under 10 ms in "
                  f"{sum(x < 10 for x in p99)} of {len(p99)}")
        floor = [r.floor[name].p99_ms for r in rounds if name in r.floor]
        if floor:
            print(f"{name}: p99 of a bare durable transaction right after "
                  f"{statistics.median(floor):.2f} ms ({min(floor):.2f}-{max(floor):.2f})")


def depths(text: str) -> list[int]:
    """``--parallel``: one depth or several, comma-separated."""
    try:
        out = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a depth or a list such as "
                                         "128,256") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError("every depth must be at least 1")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000, help="per measurement")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2,
                    help="engine processes of the N-process run")
    ap.add_argument("--rounds", type=int, default=1,
                    help="passes over every server, FreeRADIUS first in every other one; "
                         "with more than one, each round's table and then the median and "
                         "range of every figure (one pass is about 80 s)")
    ap.add_argument("--sqlite", action="store_true", help="Vigil on SQLite instead of MariaDB")
    ap.add_argument("--customers", type=int, default=1,
                    help="customers the 1,000 accounts belong to (default 1: every "
                         "reservation also counts the call on that one customer's row, so "
                         "all commits meet on it; see docs/billing.md)")
    ap.add_argument("--vigil-only", action="store_true",
                    help="skip the FreeRADIUS legs (while iterating; no ratios printed)")
    ap.add_argument("--radius", action="append", default=[], metavar="OPTION=VALUE",
                    help="an extra [Radius] option for Vigil, e.g. Commit_Batch=256 (repeatable)")
    ap.add_argument("--one-process", action="store_true",
                    help="skip the N-process Vigil run (while iterating)")
    ap.add_argument("--senders", type=int, default=16,
                    help="sockets sending at once (one radclient process each with "
                         "--sender radclient), the request files split between them "
                         "(default 16): SO_REUSEPORT hashes each socket to one engine "
                         "process, as it would each gateway, and with 4 it split them 3:1 "
                         "half of the time; every server in the table gets the same senders")
    ap.add_argument("--parallel", type=depths, default=[128, 256, 512],
                    help="requests in flight over all senders, or several depths "
                         "comma-separated: every server is measured at each, and its best "
                         "rate is its figure (default 128,256,512: each of two Vigil "
                         "processes keeps two batches of up to 64 at the database, and "
                         "with 128 of the 256 in flight that was all it had, its core "
                         "half idle; one process and FreeRADIUS fill their cores with "
                         "less)")
    ap.add_argument("--no-warmup", action="store_true",
                    help="measure from a cold start (by default every server first answers "
                         "one unmeasured authorization per account, the steady state a "
                         "running site is in)")
    ap.add_argument("--sender", choices=("python", "radclient"), default="python",
                    help="the load generator (default python: bench/radius_load.py, whose CPU "
                         "per request does not grow with the server's latency; radclient's "
                         "does, see that file)")
    args = ap.parse_args()
    if args.senders < 1 or min(args.parallel) < args.senders:
        ap.error("--senders must be at least 1 and at most --parallel")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if not 1 <= args.customers <= ACCOUNTS:
        ap.error(f"--customers must be 1 to {ACCOUNTS}")
    if not tools_here(args.sender):
        return 2
    work, secret_file = workdir("radius")
    # at least one file per sender, the requests rounded up to fill the files;
    # radclient: at most 1,000 requests per file (its own limits: DESIGN.md).
    # The Python sender takes one file per socket, so that every socket ends
    # at about the same moment (no tail with fewer requests in flight).
    per_file = -(-args.requests // args.senders)
    if args.sender == "radclient":
        per_file = min(1000, per_file)
    n_files = -(-args.requests // per_file)
    db = durable_mariadb("bench-radius")
    db.start()
    bench = Bench(args, work, secret_file, db, per_file, n_files)
    rounds: list[Round] = []
    try:
        for number in range(args.rounds):
            if args.rounds > 1:
                print(f"round {number + 1} of {args.rounds}", flush=True)
            rounds.append(bench.round(number))
            if args.rounds > 1:
                print_round(bench, rounds[-1])
    finally:
        db.destroy()
    if args.rounds == 1:
        print_round(bench, rounds[0])
    else:
        print_summary(bench, rounds)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
