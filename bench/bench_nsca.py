"""NSCA throughput: Debian's send_nsca/nsca against Vigil's client/server, and the relay.

Everything on loopback, in one run, on this machine. Servers are pinned to
CPU 1 and clients to CPU 0 (``taskset``) where there are two CPUs, since a
client costs about as much CPU as a server. Each pair sends N results over
one connection (send_nsca's input: ETB-separated sets) and the clock stops
when the server's command file holds all N lines.

Relay: N results already in an on-disk spool (fsynced segments), forwarded
in batches of Batch_Size per connection to one central server, until the
central's command file holds all N. And end to end: eight senders (Vigil's
client library, 100 results per connection) -> Vigil server spooling to
disk (fsync before each connection closes) -> relay (in this process) ->
Vigil central.

Bounded: a few N-sized runs; every wait has a deadline. Usage::

    .venv/bin/python bench/bench_nsca.py [-n 20000] [--methods 1,14] [--batch 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from nsca.client import send_results
from nsca.relay import NSCADestination, Relay
from nsca.result import CheckResult
from nsca.spool import Record, SpoolWriter
from nsca.testing import RealNSCA, wait_port
from vigil.testing.ports import free_port

BIN = Path(sys.executable).parent
TWO_CPUS = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pin(cpu: int, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if TWO_CPUS else cmd


def count_lines(path: Path, n: int, deadline: float) -> int:
    """Wait until ``path`` has ``n`` lines (or the deadline); the count seen."""
    seen = 0
    with open(path, "rb") as fh:
        while time.monotonic() < deadline:
            chunk = fh.read()
            if chunk:
                seen += chunk.count(b"\n")
                if seen >= n:
                    return seen
            else:
                time.sleep(0.002)
    return seen


def input_data(n: int) -> bytes:
    return b"".join(b"host%d\tservice %d\t%d\tOK - result %d|time=0.01s\x17"
                    % (i % 200, i % 50, i % 4, i) for i in range(n))


class VigilDaemon:
    """``vigil-nsca`` (the nsca.cfg-compatible entry point), as a process."""

    def __init__(self, workdir: Path, method: int, password: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.command_file = workdir / "nagios.cmd"
        self.command_file.touch()
        cfg = workdir / "nsca.cfg"
        cfg.write_text(f"server_port={self.port}\nserver_address=127.0.0.1\n"
                       f"command_file={self.command_file}\npassword={password}\n"
                       f"decryption_method={method}\nmax_packet_age=30\n")
        cfg.chmod(0o600)
        env = dict(os.environ, VIGIL_NSCA_LOG_LEVEL="ERROR")
        self.proc = subprocess.Popen(pin(1, [str(BIN / "vigil-nsca"), "-c", str(cfg)]),
                                     stdout=subprocess.DEVNULL, env=env)
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def run_pair(tmp: Path, client: str, server: str, method: int, n: int, data: bytes) -> float:
    password = "bench-secret"
    work = tmp / f"{client}-{server}-{method}"
    if server == "nsca":
        srv = RealNSCA(work, method=method, password=password)
        srv.proc = subprocess.Popen(pin(1, ["/usr/sbin/nsca", "-f", "-c", str(srv.cfg),
                                            "--single"]),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(srv.port)
        port, out, stop = srv.port, srv.command_file, srv.stop
    else:
        vd = VigilDaemon(work, method, password)
        port, out, stop = vd.port, vd.command_file, vd.stop
    cfg = work / "send_nsca.cfg"
    cfg.write_text(f"password={password}\nencryption_method={method}\n")
    prog = "send_nsca" if client == "send_nsca" else str(BIN / "vigil-send-nsca")
    try:
        t0 = time.monotonic()
        # -to: send_nsca's timeout covers the whole session, not one read
        proc = subprocess.run(pin(0, [prog, "-H", "127.0.0.1", "-p", str(port), "-c",
                                      str(cfg), "-to", "300", "--quiet"]),
                              input=data, capture_output=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"{prog}: {proc.stderr.decode().strip()}")
        got = count_lines(out, n, time.monotonic() + 120)
        elapsed = time.monotonic() - t0
    finally:
        stop()
    if got != n:
        raise RuntimeError(f"{client}->{server}: {got} of {n} results arrived")
    return n / elapsed


def _central(work: Path, kind: str, password: str) -> tuple[int, Path, object]:
    if kind == "nsca":
        srv = RealNSCA(work, method=1, password=password)
        srv.proc = subprocess.Popen(pin(1, ["/usr/sbin/nsca", "-f", "-c", str(srv.cfg),
                                            "--single"]),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(srv.port)
        return srv.port, srv.command_file, srv.stop
    vd = VigilDaemon(work, 1, password)
    return vd.port, vd.command_file, vd.stop


def run_relay(tmp: Path, n: int, batch: int, centrals: tuple[str, ...]) -> float:
    """Spool of n results -> every central at once; rate until the slowest has all."""
    password = "bench-secret"
    work = tmp / f"relay-{'-'.join(centrals)}"
    spool = work / "spool"
    writer = SpoolWriter(spool, seal_interval=0.05, segment_max=5000)
    for start in range(0, n, 1000):
        writer.append(Record(os.urandom(16), CheckResult(f"host{i % 200}", f"svc {i % 50}",
                                                         i % 4, f"OK - result {i}",
                                                         time.time()))
                      for i in range(start, min(n, start + 1000)))
    writer.close()
    started = [_central(work / f"central{i}", kind, password) for i, kind in enumerate(centrals)]
    relay = Relay(spool, [NSCADestination("127.0.0.1", port, password=password,
                                          batch_size=batch) for port, _, _ in started],
                  rescan_interval=0.2)
    try:
        t0 = time.monotonic()
        relay.start()
        got = [count_lines(out, n, time.monotonic() + 180) for _, out, _ in started]
        elapsed = time.monotonic() - t0
    finally:
        relay.stop()
        relay.shutdown()
        for _, _, stop in started:
            stop()  # type: ignore[operator]
    if any(g != n for g in got):
        raise RuntimeError(f"relay -> {centrals}: {got} of {n} results arrived")
    return n / elapsed


def run_end_to_end(tmp: Path, n: int, batch: int) -> float:
    """Vigil client -> Vigil server (spool, fsync) -> relay -> Vigil central."""
    password = "bench-secret"
    work = tmp / "e2e"
    central = VigilDaemon(work / "central", 1, password)
    spool = work / "spool"
    intake_cfg = work / "intake.cfg"
    intake_port = free_port()
    intake_cfg.write_text(f"server_port={intake_port}\nserver_address=127.0.0.1\n"
                          f"spool_dir={spool}\npassword={password}\ndecryption_method=1\n")
    intake = subprocess.Popen(pin(1, [str(BIN / "vigil-nsca"), "-c", str(intake_cfg)]),
                              stdout=subprocess.DEVNULL,
                              env=dict(os.environ, VIGIL_NSCA_LOG_LEVEL="ERROR"))
    wait_port(intake_port)
    relay = Relay(spool, [NSCADestination("127.0.0.1", central.port, password=password,
                                          batch_size=batch)], rescan_interval=0.2)
    per_conn = 100  # a server's results of one minute travel in one connection
    data = [[CheckResult(f"host{c}", f"svc {i}", i % 4, f"OK - {c}/{i}")
             for i in range(per_conn)] for c in range(n // per_conn)]
    try:
        relay.start()
        t0 = time.monotonic()

        def send(batches: list[list[CheckResult]]) -> None:
            for b in batches:
                send_results(b, host="127.0.0.1", port=intake_port, password=password)

        senders = [threading.Thread(target=send, args=(data[i::8],)) for i in range(8)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        got = count_lines(central.command_file, len(data) * per_conn, time.monotonic() + 180)
        elapsed = time.monotonic() - t0
    finally:
        relay.stop()
        relay.shutdown()
        intake.terminate()
        intake.wait(20)
        central.stop()
    if got != len(data) * per_conn:
        raise RuntimeError(f"end to end: {got} of {len(data) * per_conn} arrived")
    return got / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="results per run (default 20000)")
    ap.add_argument("--methods", default="1,14", help="encryption methods (default 1,14)")
    ap.add_argument("--batch", type=int, default=20, help="relay Batch_Size (default 20)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per pair; best kept")
    args = ap.parse_args(argv)
    methods = [int(m) for m in args.methods.split(",")]
    n = args.n
    data = input_data(n)
    tmp = Path(tempfile.mkdtemp(prefix="bench-nsca-", dir="/var/tmp"))
    print(f"NSCA bench: {n} results per run, {os.cpu_count()} CPUs, "
          f"{'servers on CPU 1, clients on CPU 0' if TWO_CPUS else 'no pinning'}, "
          f"spool on {tmp} (disk), best of {args.repeat}")
    print(f"{'client':<16}{'server':<14}{'method':>7}{'results':>9}{'results/s':>12}")
    try:
        for method in methods:
            # the C side of the mcrypt ciphers runs at a few hundred results/s
            m_n = n if method <= 1 else min(n, 4000)
            m_data = data if m_n == n else input_data(m_n)
            for client, server in (("send_nsca", "nsca"), ("vigil", "vigil"),
                                   ("send_nsca", "vigil"), ("vigil", "nsca")):
                rates = []
                for r in range(args.repeat):
                    rates.append(run_pair(tmp / f"r{r}", client, server, method, m_n, m_data))
                label_c = "send_nsca (C)" if client == "send_nsca" else "vigil-send-nsca"
                label_s = "nsca (C)" if server == "nsca" else "vigil-nsca"
                print(f"{label_c:<16}{label_s:<14}{method:>7}{m_n:>9}{max(rates):>12,.0f}",
                      flush=True)
        print(f"\nrelay, spool on disk, Batch_Size={args.batch} per connection "
              "(results/s delivered to each central)")
        print(f"{'centrals':<44}{'results/s':>10}")
        for centrals in (("vigil",), ("nsca",), ("vigil", "nsca")):
            rates = [run_relay(tmp / f"r{r}", n, args.batch, centrals)
                     for r in range(args.repeat)]
            name = " + ".join("vigil-nsca" if c == "vigil" else "nsca (C)" for c in centrals)
            print(f"{name:<44}{max(rates):>10,.0f}", flush=True)
        e2e = max(run_end_to_end(tmp / f"r{r}", n, args.batch) for r in range(args.repeat))
        print(f"{'end to end (client->spool->relay->central)':<44}{e2e:>10,.0f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
