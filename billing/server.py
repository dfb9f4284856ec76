"""The RADIUS server: UDP sockets, pyrad decoding, the engine behind.

One thread, one ``select`` loop. Accounting requests that arrive together
are applied in one transaction and answered after the commit (group
commit): an Accounting-Response always means "stored" (RFC 2866). When the
database is gone no reply is sent at all, so the gateway fails over to the
other site. Packets from unknown clients are dropped silently; bad
authenticators, bad Message-Authenticators and malformed packets are
dropped, counted and logged. Retransmissions get the cached reply
(RFC 5080) and never reach the engine twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import select
import signal
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

from billing import radius_decode
from billing.catalog import Catalog
from billing.committer import Committer
from billing.db import DatabaseError, DatabaseUnavailable
from billing.drop_log import DropLog
from billing.engine import Decision, Engine
from billing.request import CallRequest
from billing.store import AccountingOp
from billing.wire import AttributeTable, encode_reply
from vigil import logs, statefile

log = logging.getLogger("billing.server")

DICTIONARY = Path(__file__).parent / "dictionary" / "dictionary"
MAX_PACKET = 4096


def load_dictionary(path: str | os.PathLike[str] | None = None) -> Dictionary:
    return Dictionary(str(path or DICTIONARY))


@dataclass
class Pending:
    raw_key: tuple[Any, ...]
    pkt: rp.Packet
    addr: tuple[str, int]
    sock: socket.socket
    op: AccountingOp
    conf_id: str


class Counters(dict[str, int]):
    NAMES = ("access_requests", "access_accepts", "access_rejects", "accounting_requests",
             "accounting_responses", "accounting_duplicates", "retransmissions",
             "dropped_unknown_nas", "dropped_bad_authenticator", "dropped_malformed",
             "dropped_internal_error", "db_errors", "quarantined")

    def __init__(self) -> None:
        super().__init__({n: 0 for n in self.NAMES})


class RadiusServer:
    def __init__(self, engine: Engine, catalog: Catalog, dictionary: Dictionary,
                 host: str, auth_port: int, acct_port: int, selftest_secret: bytes,
                 commit_batch: int = 64, duplicate_ttl: float = 30.0,
                 stats_path: Path | None = None, stats_interval: float = 5.0,
                 reload_interval: float = 600.0, drop_log_interval: float = 10.0) -> None:
        self.engine = engine
        self.catalog = catalog
        self.dict = dictionary
        self.table = AttributeTable(dictionary)
        self.host = host
        self.selftest_secret = selftest_secret
        self.commit_batch = commit_batch
        self.duplicate_ttl = duplicate_ttl
        self.stats_path = stats_path
        self.stats_interval = stats_interval
        self.reload_interval = reload_interval
        self.counters = Counters()
        self.drops = DropLog(log, interval=drop_log_interval)
        self.started_at = time.time()
        self._replies: OrderedDict[tuple[Any, ...], tuple[float, bytes | None]] = OrderedDict()
        self._stop = False
        self._reload = False
        self._lock = threading.Lock()  # counters and the reply cache: two threads use them
        self._next_stats = self._next_expire = 0.0
        self._refresh_every = max(1.0, getattr(getattr(engine.store, "accounts", None),
                                               "ttl", 10.0) / 2)
        self._next_refresh = time.monotonic() + self._refresh_every
        self.committer = Committer(self, commit_batch)
        self.auth_sock = self._bind(auth_port)
        self.acct_sock = self._bind(acct_port)

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        s.bind((self.host, port))
        s.setblocking(False)
        return s

    @property
    def ports(self) -> tuple[int, int]:
        return self.auth_sock.getsockname()[1], self.acct_sock.getsockname()[1]

    # ------------------------------------------------------------ control
    def request_stop(self, *_: object) -> None:
        self._stop = True

    def request_reload(self, *_: object) -> None:
        self._reload = True

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def serve_forever(self) -> None:
        log.info("RADIUS engine listening on %s auth %d acct %d", self.host, *self.ports)
        store = self.engine.store
        if hasattr(store, "restore"):
            try:
                n = store.restore(self.engine.clock())
                if n:
                    log.info("restored %d reservations of calls in progress", n)
            except DatabaseError as exc:
                log.warning("reservations of calls in progress not restored: %s", exc)
        self.committer.start()
        next_reload = 0.0
        socks = [self.auth_sock, self.acct_sock]
        try:
            while not self._stop:
                now = time.monotonic()
                if self._reload or now >= next_reload:
                    if self._reload:
                        log.info("SIGHUP: reloading nodes and connections")
                    self._reload = False
                    self.catalog.load()
                    if hasattr(self.engine.store, "reload"):
                        self.engine.store.reload()
                    next_reload = now + self.reload_interval
                try:
                    ready, _, _ = select.select(socks, [], [], 0.5)
                except InterruptedError:
                    continue
                if ready:
                    self.poll_once(ready)
                if self.drops.due():
                    self.drops.flush()
        finally:
            log.info("RADIUS engine stopping")
            self.drops.flush()
            # Accountings already taken in are committed and answered first.
            self.committer.stop()
            self.write_stats()
            self.auth_sock.close()
            self.acct_sock.close()

    def housekeeping(self) -> None:
        """Database chores, run by the committer thread between commits so the
        packet loop never waits on them."""
        now = time.monotonic()
        store = self.engine.store
        if hasattr(store, "flush"):
            store.flush(self.engine.clock(), force=False)
        if now >= self._next_stats:
            self.write_stats()
            self._next_stats = now + self.stats_interval
        if now >= self._next_refresh and hasattr(store, "refresh_accounts"):
            try:
                store.refresh_accounts()
            except DatabaseError as exc:
                log.warning("account cache refresh failed: %s", exc)
            self._next_refresh = now + self._refresh_every
        if now >= self._next_expire:
            self._expire()
            self._next_expire = now + 60

    def _expire(self) -> None:
        store = self.engine.store
        if hasattr(store, "expire_calls"):
            try:
                n = store.expire_calls(self.engine.clock())
                if n:
                    log.info("forgot %d calls whose Stop never came", n)
            except DatabaseError as exc:
                log.warning("expiring calls failed: %s", exc)

    def write_stats(self) -> None:
        if self.stats_path is None:
            return
        with self._lock:
            data: dict[str, Any] = dict(self.counters)
        data.update(pid=os.getpid(), started_at=int(self.started_at), updated_at=int(time.time()))
        try:
            statefile.write_json(self.stats_path, data)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.stats_path, exc)

    # ------------------------------------------------------------ packets
    def poll_once(self, ready: list[socket.socket]) -> None:
        """Drain what is waiting: Access-Requests are answered at once,
        accountings go to the committer, which answers them once stored."""
        for sock in ready:
            for _ in range(self.commit_batch):
                try:
                    raw, addr = sock.recvfrom(MAX_PACKET)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    log.warning("recvfrom failed: %s", exc)
                    break
                try:
                    pending = self.handle(raw, addr, sock)
                except Exception as exc:
                    # Last resort: a bug past the decoding boundary costs this
                    # one packet, counted and summarised, never the engine.
                    self.drop(addr[0], "internal_error", f"{type(exc).__name__}: {exc}")
                    continue
                if pending is not None:
                    self.committer.submit(pending)
        self._trim_cache()

    def drop(self, source: str, cause: str, detail: str) -> None:
        """A refused datagram: counted for radius_drops, told in the summary."""
        self.count(f"dropped_{cause}")
        self.drops.note(source, cause, detail)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def _trim_cache(self) -> None:
        now = time.monotonic()
        with self._lock:
            while self._replies:
                key, (expires, _) = next(iter(self._replies.items()))
                if expires > now:
                    break
                self._replies.popitem(last=False)

    def _remember(self, key: tuple[Any, ...], data: bytes | None) -> None:
        with self._lock:
            self._replies[key] = (time.monotonic() + self.duplicate_ttl, data)
            self._replies.move_to_end(key)

    def _forget(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            self._replies.pop(key, None)

    def _secret_for(self, src_ip: str, nas_ip: str | None) -> tuple[bytes, bool] | None:
        for n in self.catalog.nodes_by_source.get(src_ip, []):
            if n.nas_ip == nas_ip:
                return n.secret, n.require_message_authenticator
        if nas_ip == self.engine.settings.selftest_nas and src_ip in (
                nas_ip, "127.0.0.1", "::1"):
            return self.selftest_secret, False
        node = self.catalog.node_for(src_ip, nas_ip)
        if node is not None:
            return node.secret, node.require_message_authenticator
        return None

    def handle(self, raw: bytes, addr: tuple[str, int], sock: socket.socket) -> Pending | None:
        src_ip = addr[0]
        is_auth = sock is self.auth_sock
        try:
            header = radius_decode.check_header(raw, is_auth)
        except radius_decode.BadPacket as exc:
            self.drop(src_ip, exc.cause, exc.detail)
            return None
        raw_key = (src_ip, addr[1], header.ident, header.authenticator)
        with self._lock:
            cached = self._replies.get(raw_key)
        if cached is not None:
            self.count("retransmissions")
            if cached[1] is not None:
                sock.sendto(cached[1], addr)
            return None  # still being committed: its reply will follow
        try:
            decoded = radius_decode.decode(header, src_ip, self._secret_for, self.dict,
                                           self.table)
        except radius_decode.BadPacket as exc:
            self.drop(src_ip, exc.cause, exc.detail)
            return None
        pkt, req, has_ma = decoded.packet, decoded.request, decoded.has_message_authenticator
        with logs.call_context(req.log_id):
            if is_auth:
                self._auth(pkt, req, addr, sock, raw_key, has_ma)
                return None
            self.count("accounting_requests")
            try:
                op = self.engine.accounting_op(req)
            except DatabaseUnavailable as exc:
                self.count("db_errors")
                log.error("database unavailable, accounting not acknowledged: %s", exc)
                return None
            except Exception as exc:
                # an engine bug: this record goes unacknowledged (the gateway
                # retries), told in the rate-limited drop summary
                self.drop(src_ip, "internal_error", f"accounting not processed: "
                          f"{type(exc).__name__}: {exc}")
                return None
            self._remember(raw_key, None)
            return Pending(raw_key, pkt, addr, sock, op, req.log_id)

    def _auth(self, pkt: rp.Packet, req: CallRequest, addr: tuple[str, int],
              sock: socket.socket, raw_key: tuple[Any, ...], has_ma: bool) -> None:
        self.count("access_requests")
        log.info("Processing %s request from %s: User-Name=%r Called-Station-Id=%r",
                 "authorization" if req.called else "authentication", req.nas_ip,
                 req.user_name, req.called)
        try:
            decision = (self.engine.authorize(req) if req.called
                        else self.engine.authenticate(req))
        except DatabaseUnavailable as exc:
            self.count("db_errors")
            log.error("database unavailable, no answer (the gateway fails over): %s", exc)
            return
        except Exception as exc:
            self.drop(req.source_ip, "internal_error",
                      f"request not processed: {type(exc).__name__}: {exc}")
            return
        data = self._encode(pkt, decision, has_ma)
        self._remember(raw_key, data)
        self.count("access_accepts" if decision.accept else "access_rejects")
        sock.sendto(data, addr)

    def _encode(self, pkt: rp.Packet, decision: Decision, has_ma: bool) -> bytes:
        return encode_reply(self.table, rp.AccessAccept if decision.accept else rp.AccessReject,
                            pkt.id, pkt.authenticator, pkt.secret, decision.attributes,
                            message_authenticator=has_ma)

    def commit(self, batch: list[Pending]) -> None:
        now = self.engine.clock()
        try:
            results = self.engine.store.apply([p.op for p in batch], now)
        except DatabaseError as exc:
            self.count("db_errors")
            log.error("accounting commit of %d records failed, none acknowledged: %s",
                      len(batch), exc)
            for p in batch:
                self._forget(p.raw_key)
            return
        for p, fresh in zip(batch, results, strict=True):
            if fresh is None:  # not stored, even in quarantine: the gateway retries
                self.count("db_errors")
                self._forget(p.raw_key)
                continue
            with logs.call_context(p.conf_id):
                if not fresh and p.op.kind in ("stop", "quarantine"):
                    self.count("accounting_duplicates")
                    log.info("duplicate accounting record: acknowledged, not charged again")
                if p.op.kind == "quarantine" and fresh:
                    self.count("quarantined")
                data = encode_reply(self.table, rp.AccountingResponse, p.pkt.id,
                                    p.pkt.authenticator, p.pkt.secret, ())
                self._remember(p.raw_key, data)
                p.sock.sendto(data, p.addr)
                self.count("accounting_responses")
                log.info("Accounting response")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
