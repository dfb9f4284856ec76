"""The NSCA server: the C ``nsca``'s wire format, without its sore points.

- A corrupt packet (bad CRC, wrong version, broken fields) is logged and
  skipped; the packets after it on the same connection still count. (Packets
  have a fixed size, so the stream stays aligned; 8-bit CFB resynchronises
  after one block, so even the mcrypt ciphers recover.)
- v3 (4304-byte) and 2.7 legacy (720-byte) clients are both understood; the
  size is found from the first packet of each connection.
- ``max_packet_age`` is enforced per packet: a packet stamped more than
  ``clock_skew`` seconds in the future, or older than ``max_packet_age +
  clock_skew``, is dropped (0 turns the check off); one stamped with its own
  connection's init time is judged on arrival (see :meth:`Server._judge_age`).
- Allowed hosts are checked before the init packet is sent, and before the
  connection takes a slot.
- Slots: ``max_connections`` in all, ``max_per_source`` per address, and a
  ``first_packet_timeout``; a connection that has not yet handed over a whole
  packet is evicted to make room, never one that has.
- A name carrying ``;`` or a line break (it would forge a Nagios command) is
  refused; every refusal and drop goes to a rate-limited summary
  (:mod:`vigil.drop_log`), never one log line per packet.
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
import dataclasses
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
from nsca.result import CheckResult, unsafe_name
from nsca.spool import Record, SpoolWriter
from vigil.drop_log import NSCA_STYLE, DropLog

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


def _stamped(p: DataPacket) -> CheckResult:
    r = p.result
    return CheckResult(r.host, r.service, r.status, r.output, float(p.timestamp))


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
    # A connection must hand over a valid packet this soon; a client sends
    # within milliseconds, send_nsca itself gives up after 10 s by default.
    first_packet_timeout: float = 10.0
    max_connections: int = 256
    max_per_source: int = 32
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
    forged: int = 0
    evicted: int = 0
    source_limit: int = 0
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
        self._live: dict[socket.socket, _Conn] = {}
        self._per_source: collections.Counter[str] = collections.Counter()
        self._conn_lock = threading.Lock()
        self._evicting = 0
        self.drops = DropLog(log, max_sources=100, style=NSCA_STYLE)
        family = socket.AF_INET6 if ":" in opts.address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((opts.address, opts.port))
        except OSError as exc:
            self.sock.close()
            raise NSCAError(f"cannot listen on {opts.address}:{opts.port}: {exc.strerror}") \
                from exc
        # a deep backlog: a burst of connections must wait for accept, not lose its SYN
        self.sock.listen(1024)
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
                self.drops.tick()
                if not self._admit(conn, addr[0]):
                    continue
                while not self._slots.acquire(timeout=0.2):
                    if self._stop.is_set():
                        self._forget(conn)
                        conn.close()
                        break
                    if not self._evicting:
                        self._evict(None)
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
            self.drops.flush()
            log.info("stopped: %s", self.summary())

    # -- slots -------------------------------------------------------------
    def _admit(self, conn: socket.socket, peer: str) -> bool:
        """Register a new connection, making room by evicting silent ones.

        A connection that has not yet handed over a valid packet is the one
        to go: a real client sends within milliseconds of connecting, so only
        idle or hostile sockets are ever evicted, never a working client.
        """
        self.stats.add(connections=1)
        if not self._allowed(peer):
            self.stats.add(refused_hosts=1)
            self.drops.note(peer, "not in allowed hosts")
            conn.close()
            return False
        source = source_of(peer)
        with self._conn_lock:
            if self._per_source[source] >= self.opts.max_per_source \
                    and not self._evict_locked(source):
                self.stats.add(source_limit=1)
                self.drops.note(peer, "over the per-source connection limit")
                conn.close()
                return False
            # evicted ones still hold their slot until their thread is done
            if len(self._live) - self._evicting >= self.opts.max_connections:
                self._evict_locked(None)
            self._live[conn] = _Conn(conn, source, time.monotonic())
            self._per_source[source] += 1
        return True

    def _evict(self, source: str | None) -> bool:
        with self._conn_lock:
            return self._evict_locked(source)

    def _evict_locked(self, source: str | None) -> bool:
        silent = [c for c in self._live.values()
                  if not c.active and not c.evicted and (source is None or c.source == source)]
        if not silent:
            return False
        victim = min(silent, key=lambda c: c.started)
        victim.evicted = True
        self._evicting += 1
        self.stats.add(evicted=1)
        self._per_source[victim.source] -= 1
        with contextlib.suppress(OSError):
            victim.sock.shutdown(socket.SHUT_RDWR)
        return True

    def _forget(self, conn: socket.socket) -> None:
        with self._conn_lock:
            c = self._live.pop(conn, None)
            if c is None:
                return
            if c.evicted:
                self._evicting -= 1
            else:
                self._per_source[c.source] -= 1
            if self._per_source[c.source] <= 0:
                del self._per_source[c.source]

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
                f"truncated={s.truncated} refused_hosts={s.refused_hosts} forged={s.forged} "
                f"evicted={s.evicted} source_limit={s.source_limit}")

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
            self._forget(conn)
            self._conns.discard(conn)
            conn.close()
            self._slots.release()
            self._threads.discard(threading.current_thread())

    def _handle(self, conn: socket.socket, peer: str) -> None:
        state = self._live.get(conn)
        started = time.monotonic()
        iv = os.urandom(packet.IV_SIZE)
        init_ts = int(self.clock())
        conn.settimeout(self.opts.idle_timeout)
        try:
            conn.sendall(packet.encode_init(iv, init_ts))
        except OSError:
            # gone already (or evicted before its thread ran)
            if state is None or not state.evicted:
                self.drops.note(peer, "connection reset")
            else:
                self.drops.note(peer, "evicted before sending a packet (slots full)")
            return
        decrypt = crypto.decryptor(self.opts.method, iv, self.opts.password)
        size = 0
        buf = b""
        ticket = 0
        index = 0
        active = False
        while True:
            if not active:
                # Until a valid packet came, the short deadline counts from the connect.
                left = started + self.opts.first_packet_timeout - time.monotonic()
                conn.settimeout(max(0.001, min(left, self.opts.idle_timeout)))
            try:
                chunk = conn.recv(262144)
            except TimeoutError:
                if active:
                    self.drops.note(peer, f"idle for {self.opts.idle_timeout:g} s")
                else:
                    first = min(self.opts.first_packet_timeout, self.opts.idle_timeout)
                    self.drops.note(peer, f"no valid packet within {first:g} s")
                break
            except OSError:
                if state is None or not state.evicted:
                    self.drops.note(peer, "connection reset")
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
                    self.stats.add(bad_packets=1)
                    self.drops.note(peer, type(exc).__name__, str(exc))
                    continue
                if not active:
                    # A packet that decodes (right password, right CRC): a real
                    # client, never evicted from now on. Garbage of the right
                    # size does not buy that.
                    active = True
                    if state is not None:
                        state.active = True
                    conn.settimeout(self.opts.idle_timeout)
                why = unsafe_name(p.result)
                if why:
                    self.stats.add(forged=1)
                    self.drops.note(peer, "forged name", f"{p.result.host};"
                                   f"{p.result.service or ''}")
                    continue
                judged = self._judge_age(p, init_ts, peer)
                if judged is not None:
                    good.append(judged)
            buf = buf[n * size:]
            if good:
                fresh, dups = self.deduper.fresh(good)
                self.stats.add(duplicates=dups)
                if fresh:
                    ticket = self.sink.accept(fresh)
                    self.stats.add(accepted=len(fresh))
        if state is not None and state.evicted:
            self.drops.note(peer, "evicted before sending a packet (slots full)")
        elif buf:
            self.stats.add(truncated=1)
            self.drops.note(peer, "ended inside a packet")
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

    def _judge_age(self, p: DataPacket, init_ts: int, peer: str) -> DataPacket | None:
        """The packet, stamped for the command file, or None when too old or too new.

        ``send_nsca`` stamps every packet with the server's own init timestamp,
        so on a long-lived connection (a slow pipe into it) that says only when
        the connection began, not how old the result is. Such a packet, which
        this connection's IV and timestamp were needed to make, is judged
        fresh and filed at its arrival, as the C nsca does. A packet stamped
        with any other time (a replay, a client's own clock) is judged by it.
        """
        if p.timestamp == init_ts:
            return dataclasses.replace(p, timestamp=int(self.clock()))
        max_age = self.opts.max_packet_age
        if max_age <= 0:
            return p
        now = self.clock()
        skew = self.opts.clock_skew
        if p.timestamp > now + skew:
            self.stats.add(future=1)
            self.drops.note(peer, "stamped in the future", f"{p.timestamp - int(now)} s ahead")
            return None
        if now - p.timestamp > max_age + skew:
            self.stats.add(too_old=1)
            self.drops.note(peer, "older than max_packet_age", f"{int(now) - p.timestamp} s old")
            return None
        return p


def source_of(peer: str) -> str:
    """What the per-source limit counts: the IPv4 address, or the IPv6 /64.

    One IPv6 host commonly holds a whole /64, so counting single addresses
    would give it 2**64 allowances.
    """
    try:
        addr = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


@dataclass
class _Conn:
    sock: socket.socket
    source: str  # see source_of
    started: float
    active: bool = False   # handed over a valid packet: never evicted
    evicted: bool = False
