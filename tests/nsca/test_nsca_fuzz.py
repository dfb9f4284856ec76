"""Live fuzz: thousands of hostile connections against a running Vigil NSCA server.

Garbage, partial packets, oversize streams, mutated valid packets (bad CRC,
and well-checksummed ones with forged names or odd fields), connections that
open and vanish, interleaved with valid results from Vigil's client and the
real Debian ``send_nsca``. The server must stay up, keep every valid
result, log bounded summaries and never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import time
from pathlib import Path

from nsca import client, crypto, packet
from nsca.result import CheckResult
from nsca.testing import run_send_nsca
from vigil.testing.wait import wait_until

ROUNDS = 3000
PW = "fuzz-pw"


def _hostile(port: int, rng: random.Random, kind: int) -> None:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        if kind == 0:  # connect and vanish
            return
        init = s.recv(packet.INIT_PACKET_SIZE)
        if len(init) != packet.INIT_PACKET_SIZE:
            return
        iv, ts = packet.decode_init(init)
        enc = crypto.encryptor(1, iv, PW)
        if kind == 1:  # random garbage of random length
            s.sendall(rng.randbytes(rng.randrange(1, 9000)))
        elif kind == 2:  # a partial packet, then close
            s.sendall(enc(packet.encode_data(CheckResult("h", "s", 0, "x"), ts))[
                :rng.randrange(1, packet.PACKET_SIZE_V3)])
        elif kind == 3:  # oversize stream
            s.sendall(rng.randbytes(packet.PACKET_SIZE_V3 * 30 + 7))
        elif kind == 4:  # a valid packet with bytes flipped after encryption
            raw = bytearray(enc(packet.encode_data(CheckResult("h", "s", 0, "x"), ts)))
            for _ in range(rng.randrange(1, 10)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            s.sendall(bytes(raw))
        else:  # well-checksummed hostile fields: forged names, odd codes, stale stamps
            plain = bytearray(packet.encode_data(CheckResult("h", "s", 0, "x"), ts))
            pos = rng.choice([14, 14 + packet.HOST_LEN, rng.randrange(14, len(plain))])
            chunk = rng.choice([b"web1;db1", b"HTTP\n[1] DISABLE_NOTIFICATIONS", b"\xff" * 200,
                                rng.randbytes(rng.randrange(1, 300))])
            plain[pos:pos + len(chunk)] = chunk
            plain = plain[:packet.PACKET_SIZE_V3]
            if rng.random() < 0.3:
                plain[8:12] = (ts - 100_000).to_bytes(4, "big")  # a stale stamp
            plain[4:8] = b"\0\0\0\0"
            plain[4:8] = packet.crc32(bytes(plain)).to_bytes(4, "big")
            s.sendall(enc(bytes(plain)))
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


def _valid(out: Path) -> list[str]:
    """Outputs of the valid results (mutated packets that stayed valid land there too)."""
    return [ln.rsplit(b";", 1)[1].decode() for ln in out.read_bytes().splitlines()
            if b";valid " in ln]


def test_server_survives_thousands_of_hostile_connections(vigil_server, tmp_path: Path,
                                                           caplog) -> None:
    srv, out = vigil_server(method=1, password=PW, first_packet_timeout=2)
    rng = random.Random(20261130)
    expected: list[str] = []
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO):
        for i in range(ROUNDS):
            _hostile(srv.port, rng, i % 6)
            if i % 50 == 0:
                r = CheckResult("web1", f"svc{i}", i % 4, f"valid {i}")
                client.send_results([r], host="127.0.0.1", port=srv.port, password=PW)
                expected.append(f"valid {i}")
            if i % 500 == 250:
                proc = run_send_nsca(srv.port, f"web1\tc{i}\t0\tvalid C {i}\x17", tmp_path,
                                     method=1, password=PW)
                assert proc.returncode == 0, proc.stdout
                expected.append(f"valid C {i}")
        elapsed = time.monotonic() - t0
        assert wait_until(lambda: len(_valid(out)) >= len(expected))
        srv.server.drops.flush()
    print(f"{ROUNDS} hostile connections in {elapsed:.1f} s; {srv.server.summary()}")
    assert srv.thread.is_alive()
    assert sorted(_valid(out)) == sorted(expected)
    server_logs = [r for r in caplog.records if r.name.startswith("nsca")]
    assert not [r for r in server_logs if r.exc_info or r.levelno >= logging.ERROR]
    # one summary per source per interval, not one line per hostile connection
    assert len(server_logs) <= 20, [r.getMessage() for r in server_logs]
    assert all("\n" not in r.getMessage() for r in server_logs)
    s = srv.server.stats
    assert s.bad_packets > ROUNDS / 6 and s.forged > 0 and s.truncated > 0
    # a result still gets in after the storm
    client.send_results([CheckResult("web1", "after", 0, "after")], host="127.0.0.1",
                        port=srv.port, password=PW)
    assert wait_until(lambda: out.read_bytes().endswith(b";after\n"))
