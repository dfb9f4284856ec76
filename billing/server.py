"""The RADIUS server: UDP sockets, pyrad decoding, the engine behind.

One thread, one ``select`` loop that never waits on the database: requests
it can decide from memory (the self-test, cached accounts) are decided at
once; the others go to look-up workers. Reservations and accounting records
go to the committer, which commits those that arrive together in one
transaction and answers them after the commit (group commit): an
Access-Accept means "reserved", an Accounting-Response "stored" (RFC 2866).
When the database is gone or too slow no reply is sent at all, so the
gateway fails over to the other server or site. Packets from unknown
clients are dropped silently; bad
authenticators, bad Message-Authenticators and malformed packets are
dropped, counted and logged. Retransmissions get the cached reply
(RFC 5080) and never reach the engine twice.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import queue
import select
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

from billing import radius_decode
from billing.catalog import Catalog
from billing.chores import Chore, Housekeeper
from billing.committer import Committer
from billing.db import DatabaseError, DatabaseUnavailable
from billing.engine import AuthorizationPlan, Decision, Engine, StaleView
from billing.gc_pauses import GcPauses
from billing.request import CallRequest
from billing.store import AccountingOp, OpKind
from billing.wire import AttributeTable, encode_reply
from vigil import logs, statefile
from vigil.drop_log import DropLog

log = logging.getLogger("billing.server")

HOLDS_EVERY = 4
REFRESH_SLICES = 16
DICTIONARY = Path(__file__).parent / "dictionary" / "dictionary"
MAX_PACKET = 4096


def load_dictionary(path: str | os.PathLike[str] | None = None) -> Dictionary:
    return Dictionary(str(path or DICTIONARY))


def refresh_turns(slices: int = REFRESH_SLICES, holds_every: int = HOLDS_EVERY
                  ) -> Iterator[tuple[bool, tuple[int, int]]]:
    """The account refresh, one slice of the cache per turn: (holds, (k, n)).
    A round is ``slices`` turns, so every account is read once a round;
    slice k reads the holds in every ``holds_every``-th of its rounds, the
    slices staggered so that every turn does about the same work."""
    for turn in itertools.count():
        k, rnd = turn % slices, turn // slices
        yield (rnd + k) % holds_every == 0, (k, slices)


@dataclass
class Pending:
    """Work for the committer: an op, and what to do once it is committed."""

    raw_key: str
    op: AccountingOp
    done: Callable[[bool], None]
    conf_id: str


class Counters:
    NAMES = ("access_requests", "access_accepts", "access_rejects", "accounting_requests",
             "accounting_responses", "accounting_duplicates", "retransmissions",
             "dropped_unknown_nas", "dropped_bad_authenticator", "dropped_malformed",
             "dropped_internal_error", "db_errors", "quarantined", "dropped_overload",
             "account_lookups")

    def __init__(self) -> None:
        self._n = {n: 0 for n in self.NAMES}
        self._lock = threading.Lock()  # the loop, the workers and the committer count

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._n[name] += n

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._n[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._n)


class StatsFile:
    """The counters written to ``<State_Dir>/radiusd-stats.json`` for the plugins."""

    def __init__(self, path: Path | None, counters: Counters, extra: Callable[[], dict[str, Any]]
                 ) -> None:
        self.path = path
        self.counters = counters
        self.extra = extra
        self.started_at = time.time()

    def write(self) -> None:
        if self.path is None:
            return
        data: dict[str, Any] = dict(self.counters.snapshot())
        data.update(self.extra())
        data.update(pid=os.getpid(), started_at=int(self.started_at),
                    updated_at=int(time.time()))
        try:
            statefile.write_json(self.path, data)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)


class ReplyCache:
    """Replies kept for retransmissions (RFC 5080); None while being decided.

    Each reply is kept at least ``ttl`` and at most twice that: two plain
    dicts, the young one taking every new reply, handed over whole to be
    the old one every ``ttl`` (the old one dropped). Why not one ordered
    dict trimmed entry by entry: at 4,500 requests/s it held 135,000
    replies, and the garbage collector walked every one at each full
    collection (10-35 ms in one go, with the packet loop stopped). A plain
    dict of strings, bytes and None is never tracked by the collector, and
    trimming is one swap. The keys are strings for that reason (tuple keys
    were walked once each, about 20,000 at every young collection)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._young: dict[str, bytes | None] = {}
        self._old: dict[str, bytes | None] = {}
        self._turn_at = clock() + ttl
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, bytes | None] | None:
        """None when unknown; else (True, the reply or None while decided)."""
        with self._lock:
            if key in self._young:
                return True, self._young[key]
            if key in self._old:
                return True, self._old[key]
            return None

    def remember(self, key: str, data: bytes | None) -> None:
        with self._lock:
            self._old.pop(key, None)
            self._young[key] = data

    def forget(self, key: str) -> None:
        with self._lock:
            self._young.pop(key, None)
            self._old.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._young) + len(self._old)

    def trim(self) -> None:
        now = self._clock()
        if now < self._turn_at:
            return
        with self._lock:
            dropped, self._old, self._young = self._old, self._young, {}
            self._turn_at = now + self.ttl
        # freed here, outside the lock: the packet loop may look up meanwhile
        del dropped


class Workers:
    """Threads for requests that need a database look-up, so the packet loop
    never waits; a bounded queue, so a hung database cannot hoard requests."""

    def __init__(self, n: int, max_queue: int = 2000) -> None:
        self._q: queue.Queue[Callable[[], None] | None] = queue.Queue(max_queue)
        self._threads = [threading.Thread(target=self._run, name=f"lookup-{i}", daemon=True)
                         for i in range(n)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def submit(self, job: Callable[[], None]) -> bool:
        try:
            self._q.put_nowait(job)
            return True
        except queue.Full:
            return False

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("request could not be processed; no answer")

    def stop(self) -> None:
        for _ in self._threads:
            try:
                self._q.put_nowait(None)
            except queue.Full:
                break


@dataclass(eq=False)  # one datagram: equal only to itself
class Incoming:
    """A packet that passed every check at the boundary."""

    pkt: radius_decode.ReplyTo
    req: CallRequest
    addr: tuple[str, int]
    sock: socket.socket
    raw_key: str
    is_auth: bool
    has_ma: bool


class RadiusServer:
    def __init__(self, engine: Engine, catalog: Catalog, dictionary: Dictionary,
                 host: str, auth_port: int, acct_port: int, selftest_secret: bytes,
                 commit_batch: int = 64, commit_threads: int = 1,
                 duplicate_ttl: float = 30.0,
                 stats_path: Path | None = None, stats_interval: float = 5.0,
                 reload_interval: float = 600.0, reuse_port: bool = False,
                 refresh_interval: float = 0.5, lookup_threads: int = 4,
                 max_wait: float = 10.0, drop_log_interval: float = 10.0) -> None:
        self.on_stop: list[Callable[[], None]] = []
        # Called with time.monotonic() every loop iteration: the parent's
        # hung-process watchdog reads it (billing/processes.py).
        self.loop_alive: Callable[[float], None] = lambda _now: None
        # Drops are noted by the loop, the workers and the committer: one lock.
        self.drops = DropLog(log, interval=drop_log_interval)
        self._drops_lock = threading.Lock()
        self.engine = engine
        self.catalog = catalog
        self.dict = dictionary
        self.table = AttributeTable(dictionary)
        self.host = host
        self.selftest_secret = selftest_secret
        self.commit_batch = commit_batch
        self.reload_interval = reload_interval
        self.reuse_port = reuse_port
        self.counters = Counters()
        self.replies = ReplyCache(duplicate_ttl)
        self._stop = False
        self._reload = False
        self.committer: Committer[Pending] = Committer(
            self.commit, self._failed, commit_batch, max_age=max_wait, threads=commit_threads,
            hold=engine.store.holding, idle=engine.store.release_held)
        self.workers = Workers(lookup_threads)
        # Requests whose account is not in memory, for the look-up workers.
        self._misses: deque[Incoming] = deque()
        self._misses_lock = threading.Lock()
        self.gc_pauses = GcPauses()
        self.stats = StatsFile(stats_path, self.counters, lambda: {
            "committer_backlog": self.committer.backlog(),
            "dropped_waiting": self.committer.dropped,
            **self.gc_pauses.snapshot()})
        store = engine.store
        clock = engine.clock
        turns = refresh_turns()
        # The reply cache's turn drops a generation of replies (135,000 after
        # a busy half minute: about 11 ms of freeing): here, off the packet
        # loop, which keeps its turns meanwhile.
        self.timers = Housekeeper("timers", [Chore("stats file", stats_interval,
                                                   self._write_stats),
                                             Chore("drop summary", 1.0, self._flush_drops),
                                             Chore("reply cache", 1.0, self.replies.trim)])
        self.db_chores = Housekeeper("db-chores", [
            # Holds (reservations, calls, logins) every HOLDS_EVERY-th round:
            # moved by every call of every engine, they only shape proposals
            # (the database grants), while a refresh that read them all every
            # half second, 1,000 busy accounts, doubled the p99 of the replies.
            # And a round in REFRESH_SLICES turns: reading 1,000 accounts at
            # once took 5-11 ms of CPU on the engine's core, in one burst
            # every half second, and the requests that arrived meanwhile made
            # the p99 at 1,000 authorizations/s (13-16 ms; 5.7-6.2 ms with no
            # refresh at all, in one sitting).
            Chore("account refresh", refresh_interval / REFRESH_SLICES,
                  lambda: store.refresh_accounts(*next(turns))),
            Chore("call expiry", engine.lifetimes.sweep_interval,
                  lambda: self._expire(clock())),
        ])
        self.auth_sock = self._bind(auth_port)
        self.acct_sock = self._bind(acct_port)

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        if self.reuse_port:
            # several engine processes on one port: the kernel spreads requests
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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

    def _write_stats(self) -> None:
        self.stats.write()
        self.gc_pauses.report()

    def serve_forever(self) -> None:
        log.info("RADIUS engine listening on %s auth %d acct %d", self.host, *self.ports)
        self.gc_pauses.install()
        self.committer.start()
        self.workers.start()
        self.timers.start()
        self.db_chores.start()
        next_reload = 0.0
        socks = [self.auth_sock, self.acct_sock]
        try:
            while not self._stop:
                now = time.monotonic()
                self.loop_alive(now)
                if self._reload or now >= next_reload:
                    if self._reload:
                        log.info("SIGHUP: reloading nodes and connections")
                    self._reload = False
                    self._reload_catalog()
                    next_reload = now + self.reload_interval
                try:
                    ready, _, _ = select.select(socks, [], [], 0.5)
                except InterruptedError:
                    continue
                if ready:
                    self.poll_once(ready)
        finally:
            log.info("RADIUS engine stopping")
            # Requests already taken in are committed and answered first.
            self.workers.stop()
            self.committer.stop()
            self.timers.stop()
            self.db_chores.stop()
            self._flush_drops(force=True)
            self.stats.write()
            for fn in self.on_stop:
                fn()
            self.auth_sock.close()
            self.acct_sock.close()
            self.gc_pauses.uninstall()

    def _reload_catalog(self) -> None:
        # Nodes and tariffs are read in a worker so a hung database never
        # stops the loop; until then the old catalog answers.
        def job() -> None:
            try:
                self.catalog.load()
                self.engine.store.reload()
            except DatabaseError as exc:
                log.warning("nodes and connections not reloaded: %s", exc)

        if not self.workers.submit(job):
            log.warning("nodes and connections not reloaded: workers busy")

    def _expire(self, now: dt.datetime) -> None:
        n = self.engine.store.expire_calls(now)
        if n:
            log.info("forgot %d calls whose Stop never came", n)

    def write_stats(self) -> None:
        self.stats.write()

    # ------------------------------------------------------------ packets
    def poll_once(self, ready: list[socket.socket]) -> None:
        """Drain what is waiting: what memory can decide is answered at once,
        the rest goes to the workers and the committer."""
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
                    self.handle(raw, addr, sock)
                except Exception as exc:
                    # Last resort: a bug past the decoding boundary costs this
                    # one packet, counted and summarised, never the engine.
                    self.drop(addr[0], "internal_error", f"{type(exc).__name__}: {exc}")

    def count(self, name: str, n: int = 1) -> None:
        self.counters.add(name, n)

    def drop(self, source: str, cause: str, detail: str) -> None:
        """A refused datagram: counted for radius_drops, told in the summary."""
        self.count(f"dropped_{cause}")
        with self._drops_lock:
            self.drops.note(source, cause, detail)

    def _flush_drops(self, force: bool = False) -> None:
        with self._drops_lock:
            if force or self.drops.due():
                self.drops.flush()

    def handle(self, raw: bytes, addr: tuple[str, int], sock: socket.socket) -> None:
        """One datagram: checked at the boundary, then decided here when
        memory can, else by a worker."""
        inc = self.receive(raw, addr, sock)
        if inc is None:
            return
        req = inc.req
        if self.engine.is_selftest(req) or not req.account_id or \
                self.engine.store.in_memory(req.account_id):
            self.process(inc)
            return
        # not in this process's memory: a cold start, an account this
        # process's sockets have not brought lately, or a new one
        self.count("account_lookups")
        self.replies.remember(inc.raw_key, None)  # retransmissions wait for the worker
        with self._misses_lock:
            self._misses.append(inc)
        if self.workers.submit(self._look_up_misses):
            return
        with self._misses_lock:
            # Only this loop appends, workers take from the left: ``inc`` is
            # still the last one unless a worker has taken it (and all before
            # it). Not ``remove(inc)``: under a flood of unknown accounts and
            # a slow database that compared every one of 2,000 waiting
            # requests field by field, 1.3 ms of the packet loop per drop.
            if not self._misses or self._misses[-1] is not inc:
                return  # a worker has taken it meanwhile: it is answered
            self._misses.pop()
        self.replies.forget(inc.raw_key)
        self.drop(addr[0], "overload", "database look-ups backlogged")

    def _look_up_misses(self) -> None:
        """A look-up worker's job: the requests waiting for accounts not in
        memory, up to a batch, their accounts read in one query, then each
        decided. Each miss submits one job; a job that finds none waiting
        (another took them) has nothing to do."""
        with self._misses_lock:
            batch = [self._misses.popleft()
                     for _ in range(min(len(self._misses), self.commit_batch))]
        if not batch:
            return
        try:
            self.engine.store.prefetch(inc.req.account_id for inc in batch)
        except DatabaseError as exc:
            # Not each alone after this: against a hung database every one
            # would wait its own timeout in this one thread. No answer: the
            # gateways retry or fail over.
            for inc in batch:
                self.replies.forget(inc.raw_key)
            self.count("db_errors", len(batch))
            log.error("database unavailable, %d requests not answered (the gateways fail "
                      "over): %s", len(batch), exc)
            return
        for inc in batch:
            self.process(inc)

    def receive(self, raw: bytes, addr: tuple[str, int], sock: socket.socket
                ) -> Incoming | None:
        """The boundary (billing.radius_decode): everything malformed, unknown
        or forged is dropped, counted and summarised; a retransmission gets
        its cached reply."""
        src_ip = addr[0]
        is_auth = sock is self.auth_sock
        try:
            header = radius_decode.check_header(raw, is_auth)
        except radius_decode.BadPacket as exc:
            self.drop(src_ip, exc.cause, exc.detail)
            return None
        # A string, not a tuple: the collector walks every tuple the cache
        # holds (a reply is kept 10 to 20 s), it never looks into a string.
        raw_key = f"{src_ip} {addr[1]} {header.ident} {header.authenticator.hex()}"
        cached = self.replies.get(raw_key)
        if cached is not None:
            self.count("retransmissions")
            if cached[1] is not None:
                sock.sendto(cached[1], addr)
            return None  # still being decided: its reply will follow
        try:
            decoded = radius_decode.decode(header, src_ip, self._secret_for, self.dict,
                                           self.table)
        except radius_decode.BadPacket as exc:
            self.drop(src_ip, exc.cause, exc.detail)
            return None
        return Incoming(decoded.packet, decoded.request, addr, sock, raw_key, is_auth,
                        decoded.has_message_authenticator)

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

    def process(self, inc: Incoming, fresh: bool = False) -> None:
        """Decide (reading the database if the account is not in memory) and
        reply, or hand the reservation or record to the committer."""
        with logs.call_context(inc.req.log_id):
            try:
                if inc.is_auth:
                    self._auth(inc, fresh)
                else:
                    self._accounting(inc)
            except DatabaseUnavailable as exc:
                self.replies.forget(inc.raw_key)
                self.count("db_errors")
                log.error("database unavailable, no answer (the gateway fails over): %s", exc)
            except Exception as exc:
                # an engine bug: this request goes unanswered (the gateway
                # retries), told in the rate-limited drop summary
                self.replies.forget(inc.raw_key)
                self.drop(inc.req.source_ip, "internal_error",
                          f"request not processed: {type(exc).__name__}: {exc}")

    def _auth(self, inc: Incoming, fresh: bool = False) -> None:
        req = inc.req
        if not fresh:
            self.count("access_requests")
            log.info("Processing %s request from %s: User-Name=%r Called-Station-Id=%r",
                     "authorization" if req.called else "authentication", req.nas_ip,
                     req.user_name, req.called)
        try:
            plan = (self.engine.plan_authorization(req) if req.called
                    else self.engine.plan_authentication(req, fresh))
        except StaleView as stale:
            # read the account again in a worker (the loop never waits on the
            # database), then decide from the database's numbers
            self.engine.store.forget(stale.account_id)
            self.replies.remember(inc.raw_key, None)
            if not self.workers.submit(lambda: self.process(inc, fresh=True)):
                self.replies.forget(inc.raw_key)
                self.drop(inc.addr[0], "overload", "database look-ups backlogged")
            return
        if isinstance(plan, Decision):
            self._send_decision(inc, plan)
            return
        self._submit(inc, plan.op, lambda granted: self._send_plan(inc, plan))

    def _send_plan(self, inc: Incoming, plan: AuthorizationPlan) -> None:
        with logs.call_context(inc.req.log_id):
            self._send_decision(inc, plan.finish())

    def _send_decision(self, inc: Incoming, decision: Decision) -> None:
        data = encode_reply(self.table, rp.AccessAccept if decision.accept else rp.AccessReject,
                            inc.pkt.id, inc.pkt.authenticator, inc.pkt.secret,
                            decision.attributes, message_authenticator=inc.has_ma)
        self.replies.remember(inc.raw_key, data)
        self.count("access_accepts" if decision.accept else "access_rejects")
        inc.sock.sendto(data, inc.addr)

    def _accounting(self, inc: Incoming) -> None:
        self.count("accounting_requests")
        op = self.engine.accounting_op(inc.req)
        self._submit(inc, op, lambda fresh: self._send_accounting(inc, op, fresh))

    def _submit(self, inc: Incoming, op: AccountingOp, done: Callable[[bool], None]) -> None:
        self.replies.remember(inc.raw_key, None)
        if not self.committer.submit(Pending(inc.raw_key, op, done, inc.req.log_id)):
            self.replies.forget(inc.raw_key)
            self.drop(inc.addr[0], "overload", "the commit backlog is full")

    def _send_accounting(self, inc: Incoming, op: AccountingOp, fresh: bool) -> None:
        with logs.call_context(inc.req.log_id):
            if not fresh and op.kind in (OpKind.STOP, OpKind.QUARANTINE):
                self.count("accounting_duplicates")
                log.info("duplicate accounting record: acknowledged, not charged again")
            if op.kind == OpKind.QUARANTINE and fresh:
                self.count("quarantined")
            data = encode_reply(self.table, rp.AccountingResponse, inc.pkt.id,
                                inc.pkt.authenticator, inc.pkt.secret, ())
            self.replies.remember(inc.raw_key, data)
            inc.sock.sendto(data, inc.addr)
            self.count("accounting_responses")
            log.info("Accounting response")

    # ------------------------------------------------------------ commits
    def commit(self, batch: list[Pending]) -> None:
        """The committer's job: one transaction, then every reply."""
        try:
            results = self.engine.store.apply([p.op for p in batch], self.engine.clock())
        except DatabaseError as exc:
            self.count("db_errors")
            log.error("commit of %d records and reservations failed, none answered: %s",
                      len(batch), exc)
            self._failed(batch)
            return
        for p, fresh in zip(batch, results, strict=True):
            if fresh is None:  # not stored, even in quarantine: the gateway retries
                self.count("db_errors")
                self.replies.forget(p.raw_key)
                continue
            try:
                p.done(fresh)
            except OSError as exc:
                log.warning("reply not sent: %s", exc)

    def _failed(self, batch: list[Pending]) -> None:
        for p in batch:
            self.replies.forget(p.raw_key)


