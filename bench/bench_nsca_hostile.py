"""NSCA under hostile load: Vigil's server against Debian's nsca, same run, same load.

Two figures per server (the C ``nsca --single`` is the reference peer):

- idle: 300 connections from one address that never send a packet, then a
  real ``send_nsca`` with 200 results: its wall time and whether all arrived;
- flood: for ``--seconds``, one thread opens hostile connections (garbage,
  partial packets, oversize streams, connect-and-vanish) as fast as it can
  while ``send_nsca`` delivers 200-result sessions back to back; hostile
  connections/s, valid results/s, and whether every valid result arrived.

Servers are pinned to CPU 1, clients to CPU 0, where there are two CPUs.
Usage::

    .venv/bin/python bench/bench_nsca_hostile.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from nsca.testing import RealNSCA, wait_port

sys.path.insert(0, str(Path(__file__).parent))
from bench_nsca import VigilDaemon, count_lines, pin  # noqa: E402

PASSWORD = "bench-secret"


def hostile(port: int, stop: threading.Event, counter: list[int]) -> None:
    rng = random.Random(7)
    while not stop.is_set():
        with contextlib.suppress(OSError), socket.socket() as s:
            s.bind(("127.0.0.2", 0))
            s.settimeout(2)
            s.connect(("127.0.0.1", port))
            kind = counter[0] % 4
            if kind:
                s.recv(132)
                s.sendall(rng.randbytes([0, 9000, 700, 4304 * 10][kind]))
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
        counter[0] += 1


def send(port: int, cfg: Path, data: bytes) -> None:
    subprocess.run(pin(0, ["send_nsca", "-H", "127.0.0.1", "-p", str(port), "-c", str(cfg),
                           "-to", "60", "--quiet"]), input=data, check=True, timeout=120)


def measure(name: str, port: int, out: Path, cfg: Path, seconds: float) -> None:
    batch = b"".join(b"h%d\ts%d\t0\tvalid %d\x17" % (i % 9, i, i) for i in range(200))
    socks = []
    for _ in range(300):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        socks.append(s)
    time.sleep(0.5)
    t0 = time.monotonic()
    send(port, cfg, batch)
    got = count_lines(out, 200, time.monotonic() + 30)
    idle_s = time.monotonic() - t0
    for s in socks:
        s.close()
    stop, counter = threading.Event(), [0]
    t = threading.Thread(target=hostile, args=(port, stop, counter))
    t.start()
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        send(port, cfg, batch)
        sent += 200
    elapsed = time.monotonic() - t0
    stop.set()
    t.join(10)
    arrived = count_lines(out, 200 + sent, time.monotonic() + 30) - 200
    print(f"{name:<12}{idle_s:>10.2f}{got:>8}{counter[0] / elapsed:>12,.0f}"
          f"{sent / elapsed:>11,.0f}{arrived:>9}/{sent}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="flood duration (default 5)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-nsca-hostile-", dir="/var/tmp"))
    cfg = tmp / "send_nsca.cfg"
    cfg.write_text(f"password={PASSWORD}\nencryption_method=1\n")
    print(f"NSCA under hostile load, XOR, {args.seconds:g} s flood; idle: 300 silent "
          "connections then send_nsca with 200 results")
    print(f"{'server':<12}{'idle s':>10}{'arrived':>8}{'hostile/s':>12}{'valid/s':>11}"
          f"{'arrived':>9}")
    c = RealNSCA(tmp / "c", password=PASSWORD, max_packet_age=30)
    c.proc = subprocess.Popen(pin(1, ["/usr/sbin/nsca", "-f", "-c", str(c.cfg), "--single"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(c.port)
    try:
        measure("nsca (C)", c.port, c.command_file, cfg, args.seconds)
    finally:
        c.stop()
    v = VigilDaemon(tmp / "v", 1, PASSWORD)
    try:
        measure("vigil-nsca", v.port, v.command_file, cfg, args.seconds)
    finally:
        v.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
