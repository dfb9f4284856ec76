#!/usr/bin/env python3
"""A closed-loop RADIUS load generator: radclient's request files, sent from
one process over several sockets with a fixed number in flight on each.

Why not radclient itself: radclient walks its whole request list after every
packet it receives and polls with short timeouts, so the CPU it burns grows
with the server's latency, not with the requests. Measured in one run of
bench/bench_radius.py (files of 1,000 requests, 32 in flight per sender):
0.39 CPU seconds per 1,000 authorizations against Vigil (about 25 ms per
answer, group commit), 0.095 against FreeRADIUS rlm_sql and 0.065 against
FreeRADIUS files. At 4,000 requests/s it took a whole core, the core
mariadbd also needs, so the measurement was slowest for the server whose
answers wait longest. This sender costs the same per request whatever the
latency: the packets are encoded before the clock starts, and only an
identifier byte (and an accounting request's authenticator) is set when one
is sent.

Each reply is checked as radclient checks it: its identifier matches a
request in flight on that socket and its Response Authenticator (RFC 2865
section 3) is right for the shared secret. An Access-Reject, a bad reply or
a request unanswered after ``--tries`` sends ``--timeout`` seconds apart
counts as failed.

    python bench/radius_load.py --port 1812 --kind auth --secret-file S \\
        --in-flight 32 --share a1.txt,a2.txt --share b1.txt,b2.txt

prints one JSON line: answered, failed, seconds (first send to last answer),
cpu_seconds (of the sending, not of the encoding).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import selectors
import socket
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyrad import packet as rp  # noqa: E402
from pyrad.dictionary import Dictionary  # noqa: E402

ACCESS_ACCEPT, ACCOUNTING_RESPONSE = 2, 5


def read_requests(path: Path) -> list[list[tuple[str, str]]]:
    """radclient's request file: ``Attribute = value`` lines, a blank line
    between requests; string values in double quotes."""
    out: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            if current:
                out.append(current)
                current = []
            continue
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        current.append((name.strip(), value))
    if current:
        out.append(current)
    return out


def encode(request: list[tuple[str, str]], kind: str, secret: bytes, dictionary: Dictionary
           ) -> bytes:
    pkt: rp.Packet
    if kind == "auth":
        pkt = rp.AuthPacket(id=0, secret=secret, dict=dictionary)
    else:
        pkt = rp.AcctPacket(id=0, secret=secret, dict=dictionary)
    for name, value in request:
        if name == "User-Password":
            pkt[name] = pkt.PwCrypt(value)
            continue
        attr = dictionary.attributes[name]
        pkt.AddAttribute(name, int(value) if attr.type == "integer" and value.isdigit()
                         else value)
    return bytes(pkt.RequestPacket())


class Sender:
    """One socket, its share of the requests, at most ``in_flight`` of them
    unanswered; identifiers come from a free list, so a slow answer is never
    confused with a newer request."""

    def __init__(self, packets: list[bytes], address: tuple[str, int], secret: bytes,
                 in_flight: int, accounting: bool) -> None:
        self.packets = packets
        self.next = 0
        self.address = address
        self.secret = secret
        self.in_flight = min(in_flight, 255)
        self.accounting = accounting
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setblocking(False)
        self.free: deque[int] = deque(range(256))
        # identifier -> (packet as sent, request authenticator, tries, sent at)
        self.waiting: dict[int, tuple[bytes, bytes, int, float]] = {}
        self.answered = self.failed = 0

    def done(self) -> bool:
        return self.next >= len(self.packets) and not self.waiting

    def fill(self, now: float) -> None:
        while len(self.waiting) < self.in_flight and self.next < len(self.packets):
            ident = self.free.popleft()
            data = bytearray(self.packets[self.next])
            self.next += 1
            data[1] = ident
            if self.accounting:
                # RFC 2866 section 3: the authenticator covers the identifier
                data[4:20] = bytes(16)
                data[4:20] = hashlib.md5(bytes(data) + self.secret).digest()
            raw = bytes(data)
            self.waiting[ident] = (raw, raw[4:20], 1, now)
            self.sock.sendto(raw, self.address)

    def receive(self, now: float) -> None:
        while True:
            try:
                reply = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            if len(reply) < 20:
                continue
            entry = self.waiting.get(reply[1])
            if entry is None:
                continue  # a late answer to a request already retried and answered
            expected = hashlib.md5(reply[:4] + entry[1] + reply[20:] + self.secret).digest()
            if expected != reply[4:20]:
                continue  # not from the server we asked: wait on, as radclient does
            del self.waiting[reply[1]]
            self.free.append(reply[1])
            ok = reply[0] == (ACCOUNTING_RESPONSE if self.accounting else ACCESS_ACCEPT)
            if ok:
                self.answered += 1
            else:
                self.failed += 1
        self.fill(now)

    def expire(self, now: float, timeout: float, tries: int) -> None:
        for ident, (raw, auth, n, sent) in list(self.waiting.items()):
            if now - sent < timeout:
                continue
            if n >= tries:
                del self.waiting[ident]
                self.free.append(ident)
                self.failed += 1
            else:
                self.waiting[ident] = (raw, auth, n + 1, now)
                self.sock.sendto(raw, self.address)
        self.fill(now)


def run(senders: list[Sender], timeout: float, tries: int) -> tuple[float, float]:
    sel = selectors.DefaultSelector()
    for s in senders:
        sel.register(s.sock, selectors.EVENT_READ, s)
    cpu0 = time.process_time()
    t0 = now = time.perf_counter()
    for s in senders:
        s.fill(now)
    next_check = now + 0.25
    while not all(s.done() for s in senders):
        for key, _ in sel.select(0.25):
            key.data.receive(time.perf_counter())
        now = time.perf_counter()
        if now >= next_check:
            for s in senders:
                s.expire(now, timeout, tries)
            next_check = now + 0.25
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    for s in senders:
        s.sock.close()
    return seconds, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kind", choices=("auth", "acct"), required=True)
    ap.add_argument("--secret-file", type=Path, required=True,
                    help="the shared secret's file (a secret on the command line shows in ps)")
    ap.add_argument("--in-flight", type=int, default=32, help="requests in flight per socket")
    ap.add_argument("--tries", type=int, default=3, help="sends of a request before it fails")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds between sends")
    ap.add_argument("--share", action="append", required=True,
                    help="comma-separated request files sent back to back on one socket "
                         "(repeat: one socket each)")
    ap.add_argument("--dictionary", type=Path,
                    default=ROOT / "billing" / "dictionary" / "dictionary")
    args = ap.parse_args()
    secret = args.secret_file.read_text().strip().encode()
    dictionary = Dictionary(str(args.dictionary))
    senders = []
    for share in args.share:
        packets = [encode(r, args.kind, secret, dictionary)
                   for f in share.split(",") for r in read_requests(Path(f))]
        senders.append(Sender(packets, (args.host, args.port), secret, args.in_flight,
                              args.kind == "acct"))
    seconds, cpu = run(senders, args.timeout, args.tries)
    print(json.dumps({"answered": sum(s.answered for s in senders),
                      "failed": sum(s.failed for s in senders),
                      "seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
