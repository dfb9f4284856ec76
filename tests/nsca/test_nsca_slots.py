"""Connection slots: idle sockets cannot starve a real client.

300 connections that never send a packet, then a real Debian ``send_nsca``:
its result must get in while they are still open, whether they come from
another address (the per-source limit refuses them), from the client's own
address (its oldest silent connections are evicted), or from many addresses
(the oldest silent connection anywhere is evicted when the slots are full).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsca import crypto, packet
from nsca.result import CheckResult
from nsca.server import source_of
from nsca.testing import run_send_nsca, wait_lines
from vigil.testing.wait import wait_until


@contextlib.contextmanager
def idle_sockets(port: int, sources: list[str], n: int) -> Iterator[list[socket.socket]]:
    socks = []
    try:
        for i in range(n):
            s = socket.socket()
            s.bind((sources[i % len(sources)], 0))
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def _deliver(srv, out: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = run_send_nsca(srv.port, "web1\tHTTP\t0\treal client\x17", tmp_path, method=1,
                         password="pw")
    assert proc.returncode == 0, proc.stdout
    assert wait_lines(out, 1, timeout=10) == [
        ln for ln in out.read_text().splitlines() if ln.endswith(";web1;HTTP;0;real client")]
    print(f"send_nsca delivered in {time.monotonic() - t0:.2f} s")


def test_idle_connections_from_another_source(vigil_server, tmp_path: Path) -> None:
    srv, out = vigil_server(method=1, password="pw", first_packet_timeout=60)
    with idle_sockets(srv.port, ["127.0.0.2"], 300):
        # each newcomer over the limit evicted its source's oldest silent one
        assert wait_until(lambda: srv.server.stats.evicted == 300 - 32)
        _deliver(srv, out, tmp_path)
        assert srv.server.stats.evicted == 300 - 32


def test_idle_connections_from_the_clients_own_source(vigil_server, tmp_path: Path) -> None:
    srv, out = vigil_server(method=1, password="pw", first_packet_timeout=60)
    with idle_sockets(srv.port, ["127.0.0.1"], 300):
        # each newcomer over the limit evicted the source's oldest silent one
        assert wait_until(lambda: srv.server.stats.evicted == 300 - 32)
        _deliver(srv, out, tmp_path)


def test_idle_connections_from_many_sources_fill_every_slot(vigil_server,
                                                            tmp_path: Path) -> None:
    srv, out = vigil_server(method=1, password="pw", first_packet_timeout=60,
                            max_connections=256)
    sources = [f"127.0.1.{i}" for i in range(1, 31)]  # 10 each: under the per-source limit
    with idle_sockets(srv.port, sources, 300):
        assert wait_until(lambda: srv.server.stats.evicted == 300 - 256)
        _deliver(srv, out, tmp_path)


def test_a_sending_connection_is_never_evicted(vigil_server) -> None:
    srv, out = vigil_server(method=1, password="pw", first_packet_timeout=60, max_per_source=2)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as busy:
        iv, ts = packet.decode_init(busy.recv(packet.INIT_PACKET_SIZE))
        enc = crypto.encryptor(1, iv, "pw")
        busy.sendall(enc(packet.encode_data(CheckResult("h", "s", 0, "one"), ts)))
        assert wait_lines(out, 1)
        with idle_sockets(srv.port, ["127.0.0.1"], 5):
            # the one silent slot left is recycled; the busy one stays
            assert wait_until(lambda: srv.server.stats.evicted == 4)
            busy.sendall(enc(packet.encode_data(CheckResult("h", "s", 0, "two"), ts)))
            assert len(wait_lines(out, 2)) == 2


def test_a_source_whose_connections_all_send_is_refused_more(vigil_server) -> None:
    srv, out = vigil_server(method=1, password="pw", max_per_source=1)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as busy:
        iv, ts = packet.decode_init(busy.recv(packet.INIT_PACKET_SIZE))
        busy.sendall(crypto.encryptor(1, iv, "pw")(
            packet.encode_data(CheckResult("h", "s", 0, "one"), ts)))
        assert wait_lines(out, 1)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as extra:
            assert extra.recv(10) == b""  # closed before any init packet
        assert srv.server.stats.source_limit == 1


def test_silent_connection_closed_at_the_first_packet_deadline(vigil_server) -> None:
    srv, _ = vigil_server(method=1, password="pw", first_packet_timeout=0.3, idle_timeout=60)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.recv(packet.INIT_PACKET_SIZE)
        s.sendall(b"x" * 100)  # a partial packet does not count
        t0 = time.monotonic()
        assert s.recv(10) == b""
        assert time.monotonic() - t0 < 5
    assert wait_until(lambda: srv.server.stats.truncated == 1)


@pytest.mark.parametrize("option", ["max_connections", "max_per_source"])
def test_limits_are_options(vigil_server, option: str) -> None:
    srv, _ = vigil_server(method=1, password="pw", **{option: 7})
    assert getattr(srv.server.opts, option) == 7


def test_garbage_of_packet_size_does_not_buy_a_slot(vigil_server) -> None:
    srv, _ = vigil_server(method=1, password="pw", first_packet_timeout=60, max_per_source=1)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as junk:
        junk.recv(packet.INIT_PACKET_SIZE)
        junk.sendall(b"\x55" * packet.PACKET_SIZE_V3)  # the right size, the wrong password
        assert wait_until(lambda: srv.server.stats.bad_packets == 1)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            assert len(s.recv(packet.INIT_PACKET_SIZE)) == packet.INIT_PACKET_SIZE
            assert junk.recv(10) == b""  # evicted for the newcomer
    assert srv.server.stats.evicted == 1


@pytest.mark.parametrize("peer,source", [
    ("10.1.2.3", "10.1.2.3"), ("2001:db8::1", "2001:db8::/64"),
    ("2001:db8::ffff:1", "2001:db8::/64"), ("::ffff:10.0.0.1", "10.0.0.1"),
    ("fe80::1%eth0", "fe80::/64")])
def test_per_source_counts_ipv4_addresses_and_ipv6_64s(peer: str, source: str) -> None:
    assert source_of(peer) == source
