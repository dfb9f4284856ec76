"""The NSCA server: the C ``nsca``'s wire format, without its sore points.

- A corrupt packet (bad CRC, wrong version, broken fields) is logged and
  skipped; the packets after it on the same connection still count. (Packets
  have a fixed size, so the stream stays aligned; 8-bit CFB resynchronises
  after one block, so even the mcrypt ciphers recover.)
- v3 (4304-byte) and 2.7 legacy (720-byte) clients are both understood; the
  size is found from the first packet of each connection.
- ``max_packet_age`` is enforced: a packet stamped more than ``clock_skew``
  seconds in the future, or older than ``max_packet_age + clock_skew``, is
  dropped. (0 turns the check off.)
- Allowed hosts are checked before the init packet is sent.
- Results go to a sink: the Nagios command file (reopened when Nagios
  recreates the pipe) or the on-disk spool; with the spool the connection is
  closed only once its results are fsynced, so the client's clean close is
  an acknowledgement.
- Results carrying a Vigil result id (see :mod:`nsca.packet`) are deduplicated
  within a window, which makes the relay's re-sent batch harmless.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from nsca import crypto, packet
from nsca.commandfile import CommandFileSink
from nsca.errors import NSCAError, ProtocolError, SpoolError
from nsca.packet import DataPacket
from nsca.spool import Record, SpoolWriter

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed(text: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> networks; empty means everyone."""
    nets = []
    for item in (t.strip() for t in text.replace(" ", ",").split(",")):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (a.b.c.d or "
                             "a.b.c.d/nn)") from None
    return tuple(nets)


class Sink(Protocol):
    def accept(self, packets: Sequence[DataPacket]) -> int: ...
    def wait(self, ticket: int, timeout: float) -> bool: ...
    def close(self) -> None: ...


class CommandSink:
    def __init__(self, target: CommandFileSink) -> None:
        self.target = target

    def accept(self, packets: Sequence[DataPacket]) -> int:
        # The check time from a Vigil trailer when there is one, so a result the
        # relay held back during an outage is filed at the time it was measured.
        self.target.put((p.result, int(p.result.timestamp or p.timestamp)) for p in packets)
        return 0

    def wait(self, ticket: int, timeout: float) -> bool:
        return True

    def close(self) -> None:
        self.target.close()


class SpoolSink:
    def __init__(self, writer: SpoolWriter) -> None:
        self.writer = writer

    def accept(self, packets: Sequence[DataPacket]) -> int:
        return self.writer.append(
            Record(p.result_id or os.urandom(packet.RESULT_ID_SIZE),
                   p.result if p.result.timestamp else _stamped(p)) for p in packets)

    def wait(self, ticket: int, timeout: float) -> bool:
        return self.writer.wait_sealed(ticket, timeout)

    def close(self) -> None:
        self.writer.close()


def _stamped(p: DataPacket) -> packet.CheckResult:
    r = p.result
    return packet.CheckResult(r.host, r.service, r.status, r.output, float(p.timestamp))


class Deduper:
    """Remembers the last ``window`` result ids (in memory)."""

    def __init__(self, window: int = 200_000) -> None:
        self.window = window
        self._seen: set[bytes] = set()
        self._order: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()

    def fresh(self, packets: Sequence[DataPacket]) -> tuple[list[DataPacket], int]:
        if self.window <= 0:
            return list(packets), 0
        out, dups = [], 0
        with self._lock:
            for p in packets:
                rid = p.result_id
                if rid is None:
                    out.append(p)
                    continue
                if rid in self._seen:
                    dups += 1
                    continue
                self._seen.add(rid)
                self._order.append(rid)
                out.append(p)
            while len(self._order) > self.window:
                self._seen.discard(self._order.popleft())
        return out, dups


@dataclass
class ServerOptions:
    address: str = "127.0.0.1"
    port: int = 5667
    password: str = ""
    method: int = 1
    allowed: tuple[Network, ...] = ()
    max_packet_age: int = 30
    clock_skew: int = 5
    idle_timeout: float = 60.0
    max_connections: int = 256
    dedupe_window: int = 200_000


@dataclass
class Stats:
    connections: int = 0
    refused_hosts: int = 0
    accepted: int = 0
    duplicates: int = 0
    bad_packets: int = 0
    too_old: int = 0
    future: int = 0
    truncated: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)


class Server:
    """Threaded NSCA server; :meth:`serve_forever` until :meth:`stop`."""

    def __init__(self, opts: ServerOptions, sink: Sink, *,
                 clock: Callable[[], float] = time.time) -> None:
        crypto.check_method(opts.method)
        self.opts = opts
        self.sink = sink
        self.clock = clock
        self.stats = Stats()
        self.report_interval = 60.0
        self.deduper = Deduper(opts.dedupe_window)
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(opts.max_connections)
        self._threads: set[threading.Thread] = set()
        self._conns: set[socket.socket] = set()
        family = socket.AF_INET6 if ":" in opts.address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((opts.address, opts.port))
        except OSError as exc:
            self.sock.close()
            raise NSCAError(f"cannot listen on {opts.address}:{opts.port}: {exc.strerror}") \
                from exc
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    # -- lifecycle --------------------------------------------------------
    def serve_forever(self) -> None:
        log.info("listening on %s:%d (method %s)", self.opts.address, self.port,
                 crypto.method_name(self.opts.method))
        last_report, reported = time.monotonic(), ""
        try:
            while not self._stop.is_set():
                if time.monotonic() - last_report >= self.report_interval:
                    last_report = time.monotonic()
                    if self.summary() != reported:  # one line a minute while busy
                        reported = self.summary()
                        log.info("totals: %s", reported)
                try:
                    conn, addr = self.sock.accept()
                except TimeoutError:
                    continue
                except OSError as exc:
                    if self._stop.is_set():
                        break
                    log.error("accept failed: %s", exc)
                    time.sleep(0.1)
                    continue
                while not self._slots.acquire(timeout=0.2):
                    if self._stop.is_set():
                        conn.close()
                        break
                else:
                    self._start_thread(conn, addr)
        finally:
            self.sock.close()
            # Clients still connected: stop reading, keep what they sent, close.
            for c in list(self._conns):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RD)
            for t in list(self._threads):
                t.join(5)
            self.sink.close()
            log.info("stopped: %s", self.summary())

    def _start_thread(self, conn: socket.socket, addr: tuple) -> None:
        self._conns.add(conn)
        t = threading.Thread(target=self._run, args=(conn, addr), daemon=True,
                             name=f"nsca-{addr[0]}:{addr[1]}")
        self._threads.add(t)
        t.start()

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="nsca-server", daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> str:
        s = self.stats
        return (f"connections={s.connections} accepted={s.accepted} duplicates={s.duplicates} "
                f"bad_packets={s.bad_packets} too_old={s.too_old} future={s.future} "
                f"truncated={s.truncated} refused_hosts={s.refused_hosts}")

    # -- one connection ---------------------------------------------------
    def _allowed(self, ip: str) -> bool:
        if not self.opts.allowed:
            return True
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.opts.allowed)

    def _run(self, conn: socket.socket, addr: tuple) -> None:
        try:
            self._handle(conn, addr[0])
        except SpoolError as exc:
            # Reset instead of closing: a Vigil client takes a clean close as
            # "stored", and these results were not.
            log.error("connection from %s: results not stored: %s", addr[0], exc)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except Exception:
            log.exception("connection from %s failed", addr[0])
        finally:
            self._conns.discard(conn)
            conn.close()
            self._slots.release()
            self._threads.discard(threading.current_thread())

    def _handle(self, conn: socket.socket, peer: str) -> None:
        self.stats.add(connections=1)
        if not self._allowed(peer):
            self.stats.add(refused_hosts=1)
            log.warning("refused connection from %s: not in allowed hosts", peer)
            return
        conn.settimeout(self.opts.idle_timeout)
        iv = os.urandom(packet.IV_SIZE)
        init_ts = int(self.clock())
        conn.sendall(packet.encode_init(iv, init_ts))
        decrypt = crypto.decryptor(self.opts.method, iv, self.opts.password)
        size = 0
        buf = b""
        ticket = 0
        errors: collections.Counter[str] = collections.Counter()
        index = 0
        while True:
            try:
                chunk = conn.recv(262144)
            except TimeoutError:
                log.warning("connection from %s idle for %gs; closing", peer,
                            self.opts.idle_timeout)
                break
            except OSError as exc:
                log.warning("connection from %s: %s", peer, exc)
                break
            if not chunk:
                break
            buf += chunk
            if not size:
                if len(buf) < packet.PACKET_SIZE_LEGACY:
                    continue
                size = self._detect_size(buf, iv)
            n = len(buf) // size
            if not n:
                continue
            good = []
            for i in range(n):
                index += 1
                try:
                    p = packet.decode_data(decrypt(buf[i * size:(i + 1) * size]))
                except ProtocolError as exc:
                    errors[type(exc).__name__] += 1
                    self.stats.add(bad_packets=1)
                    if sum(errors.values()) == 1:
                        log.warning("packet %d from %s skipped: %s", index, peer, exc)
                    continue
                if self._too_old_or_future(p, peer, errors):
                    continue
                good.append(p)
            buf = buf[n * size:]
            if good:
                fresh, dups = self.deduper.fresh(good)
                self.stats.add(duplicates=dups)
                if fresh:
                    ticket = self.sink.accept(fresh)
                    self.stats.add(accepted=len(fresh))
        if buf:
            errors["TruncatedPacket"] += 1
            self.stats.add(truncated=1)
            log.warning("connection from %s ended inside a packet (%d stray bytes)", peer,
                        len(buf))
        if errors:
            log.warning("connection from %s: %d packets, dropped %s", peer, index,
                        dict(errors))
        if ticket and not self.sink.wait(ticket, 30.0):
            log.error("connection from %s: results not yet on disk after 30s", peer)
            return

    def _detect_size(self, buf: bytes, iv: bytes) -> int:
        # A throw-away decryptor, so the real one's CFB state is untouched.
        trial = crypto.decryptor(self.opts.method, iv, self.opts.password)
        try:
            packet.decode_data(trial(buf[:packet.PACKET_SIZE_LEGACY]))
        except ProtocolError:
            return packet.PACKET_SIZE_V3
        return packet.PACKET_SIZE_LEGACY

    def _too_old_or_future(self, p: DataPacket, peer: str,
                           errors: collections.Counter[str]) -> bool:
        max_age = self.opts.max_packet_age
        if max_age <= 0:
            return False
        now = self.clock()
        skew = self.opts.clock_skew
        if p.timestamp > now + skew:
            errors["future"] += 1
            self.stats.add(future=1)
            if errors["future"] == 1:
                log.warning("packet from %s for %s dropped: stamped %ds in the future", peer,
                            p.result.host, p.timestamp - int(now))
            return True
        if now - p.timestamp > max_age + skew:
            errors["too_old"] += 1
            self.stats.add(too_old=1)
            if errors["too_old"] == 1:
                log.warning("packet from %s for %s dropped: %ds old, max_packet_age %d", peer,
                            p.result.host, int(now) - p.timestamp, max_age)
            return True
        return False
