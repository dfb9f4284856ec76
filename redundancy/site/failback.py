"""Failback: the delta's charges and xDRs land on the primary exactly once.

Steps (the source's order):

1. **Funds lock** on the primary, per account (and per customer of credit
   accounts): in ONE transaction, apply the delta adjustments not locked yet
   to the balances and record them in ``site_funds_locks``, and move
   ``locked_upto``. From then on the primary's engines can spend only what is
   left (the source's $0.30).
2. **Stand-by**: this site's mode file goes back to stand-by; its RADIUS
   stops answering.
3. **Login holds** still live in the delta ([Fraud_Detection]) are set on
   the primary's accounts where no other call holds them there.
4. **Transfer** in batches, each ONE transaction on the primary: check
   ``transferred_upto`` is still where this run read it (row lock), insert the
   batch's xDRs under ``<site>#<seq>`` (a unique key: a second insert fails
   and rolls the batch back), lower the locks by their amounts, charge the
   vendors, and move ``transferred_upto``. Rows that reached the delta after
   step 1 (a Stop committed while the switch happened) are locked first.
5. **Report**.

A kill -9 at any moment leaves either a committed batch (skipped when re-run,
by the watermark) or nothing; a second failback running at the same time
waits on the watermark row and then finds the batch done.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from billing import models as m
from billing.db import DatabaseUnavailable, is_unavailable
from billing.store import LOGIN_FREE
from redundancy.site import delta as d
from redundancy.site import packed
from redundancy.site import primary_tables as p

log = logging.getLogger(__name__)


class _Undo(Exception):
    """Leave a primary transaction without committing (dry run, or lock first)."""


class FailbackError(Exception):
    """Failback could not go on; re-running it is safe."""

    def __init__(self, message: str, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


def _error(where: str, exc: SQLAlchemyError) -> FailbackError:
    return FailbackError(f"{where}: {exc.__class__.__name__}: {getattr(exc, 'orig', exc)}",
                         unavailable=is_unavailable(exc))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class Backlog:
    """What is left to do, as the primary's watermark and the delta say."""

    site: str
    delta_max: int
    locked_upto: int
    transferred_upto: int
    pending_xdrs: int
    locked_accounts: int = 0
    locked_total: Decimal = Decimal(0)

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


@dataclass
class Report:
    locked_rows: int = 0
    locked_owners: int = 0
    transferred: int = 0
    batches: int = 0
    seconds: float = 0.0
    actions: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.transferred / self.seconds if self.seconds > 0 else 0.0


def _sum_by(rows: list[Any], key: str, value: str) -> dict[int, Decimal]:
    out: dict[int, Decimal] = {}
    for r in rows:
        k = r[key]
        if k is None:
            continue
        out[k] = out.get(k, Decimal(0)) + Decimal(r[value])
    return out


class Failback:
    def __init__(self, primary: Engine, delta: Engine, site: str, batch: int = 5000,
                 progress: Callable[[str], None] | None = None, settle: float = 1.0) -> None:
        self.primary = primary
        self.delta = delta
        self.site = site
        self.batch = batch
        self.progress = progress or (lambda line: None)
        # after the switch: a Stop the engine took in before it commits within
        # its group-commit batch; waiting this long lets the second lock see it
        self.settle = settle
        self._pool: Any = None
        self._prefetched: tuple[int, Any] | None = None

    # ----------------------------------------------------------------- reading
    def prepare(self) -> None:
        try:
            p.create(self.primary)
        except SQLAlchemyError as exc:
            raise _error("primary database", exc) from exc
        try:
            d.create(self.delta)
        except SQLAlchemyError as exc:
            raise _error("delta database", exc) from exc

    def _primary_ready(self) -> bool:
        """Whether failback's tables exist on the primary (not before the first one)."""
        from sqlalchemy import inspect

        try:
            return bool(inspect(self.primary).has_table("site_watermarks"))
        except SQLAlchemyError as exc:
            raise _error("primary database", exc) from exc

    def _delta_max(self) -> int:
        from sqlalchemy import inspect

        try:
            if not inspect(self.delta).has_table("delta_xdrs"):
                return 0  # never stand-alone: nothing recorded
            with self.delta.connect() as conn:
                return int(conn.execute(select(func.coalesce(func.max(d.delta_xdrs.c.seq), 0))
                                        ).scalar_one())
        except SQLAlchemyError as exc:
            raise _error("delta database", exc) from exc

    def _watermark(self, conn: Connection, lock: bool) -> tuple[int, int]:
        q = select(p.site_watermarks.c.locked_upto, p.site_watermarks.c.transferred_upto
                   ).where(p.site_watermarks.c.site == self.site)
        if lock and conn.dialect.name != "sqlite":
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            conn.execute(insert(p.site_watermarks).values(
                site=self.site, locked_upto=0, transferred_upto=0, updated_at=utcnow()))
            return 0, 0
        return int(row[0]), int(row[1])

    def backlog(self) -> Backlog:
        top = self._delta_max()
        if not self._primary_ready():
            return Backlog(self.site, top, 0, 0, self._pending(0) if top else 0)
        try:
            with self.primary.connect() as conn:
                row = conn.execute(select(
                    p.site_watermarks.c.locked_upto, p.site_watermarks.c.transferred_upto
                ).where(p.site_watermarks.c.site == self.site)).first()
                locks = conn.execute(select(func.count(), func.coalesce(
                    func.sum(p.site_funds_locks.c.amount), 0)).where(
                    p.site_funds_locks.c.site == self.site, p.site_funds_locks.c.kind == "account",
                    p.site_funds_locks.c.amount != 0)).one()
        except SQLAlchemyError as exc:
            raise _error("primary database", exc) from exc
        locked, moved = (int(row[0]), int(row[1])) if row else (0, 0)
        pending = self._pending(moved) if top else 0
        return Backlog(self.site, top, locked, moved, pending, int(locks[0]), Decimal(locks[1]))

    def _pending(self, moved: int) -> int:
        try:
            with self.delta.connect() as conn:
                return int(conn.execute(select(func.count()).where(
                    d.delta_xdrs.c.seq > moved)).scalar_one())
        except SQLAlchemyError as exc:
            raise _error("delta database", exc) from exc

    # ----------------------------------------------------------------- step 1
    def lock_funds(self, report: Report, dry_run: bool = False) -> int:
        """Lock (apply to balances) every delta adjustment not locked yet; one transaction."""
        top = self._delta_max()
        if dry_run and not self._primary_ready():
            return self._plan_lock(report, 0, top)
        try:
            with self.primary.begin() as conn:
                locked, _moved = self._watermark(conn, lock=True)
                if locked >= top:
                    return 0
                if self._packed_path:
                    n, n_acct, total, values = self._lock_values(locked, top)
                    n_cust = values.count("'customer'")
                else:
                    n, accounts, customers = self._sums(locked, top)
                    n_acct, n_cust = len(accounts), len(customers)
                    total = sum(accounts.values(), Decimal(0))
                line = (f"lock: {n} xDR(s) seq {locked + 1}..{top}: "
                        f"{n_acct} account(s) total {total}, {n_cust} customer(s)")
                report.actions.append(line)
                self.progress(("would " if dry_run else "") + line)
                if dry_run:
                    raise _Undo
                if self._packed_path:
                    self._lock_packed(conn, values)
                else:
                    self._move(conn, m.Account, "account", accounts)
                    self._move(conn, m.Customer, "customer", customers)
                conn.execute(update(p.site_watermarks).where(
                    p.site_watermarks.c.site == self.site).values(
                    locked_upto=top, updated_at=utcnow()))
        except _Undo:
            return n
        except SQLAlchemyError as exc:
            raise _error("funds lock", exc) from exc
        report.locked_rows += n
        report.locked_owners += n_acct
        return n

    def _lock_values(self, after: int, upto: int) -> tuple[int, int, Decimal, str]:
        """(xDRs, accounts, their total, the per-owner sums as a server-quoted VALUES list)."""
        with self.delta.connect() as dconn:
            dconn.exec_driver_sql("SET SESSION group_concat_max_len = 1073741824")
            row = dconn.execute(text(packed.LOCK_VALUES), {"a": after, "b": upto}).one()
            n = dconn.execute(select(func.count()).where(
                d.delta_xdrs.c.seq > after, d.delta_xdrs.c.seq <= upto)).scalar_one()
        return int(n), int(row[0] or 0), Decimal(row[1] or 0), str(row[2] or "")

    def _lock_packed(self, conn: Connection, values: str) -> None:
        for sql in packed.LOCK_TABLE:
            conn.exec_driver_sql(sql)
        if values:
            packed.insert_values(conn, "failback_lock", values)
        for sql in packed.LOCK_APPLY:
            conn.execute(text(sql), {"site": self.site})

    def _sums(self, after: int, upto: int) -> tuple[int, dict[int, Decimal], dict[int, Decimal]]:
        """(xDRs, per-account and per-customer adjustments) of seq in (after, upto],
        summed by the delta database (a lock reads owners, not xDRs)."""
        x = d.delta_xdrs.c
        where = (x.seq > after, x.seq <= upto)
        with self.delta.connect() as dconn:
            n = int(dconn.execute(select(func.count()).where(*where)).scalar_one())
            accounts = {r[0]: Decimal(r[1]) for r in dconn.execute(
                select(x.owner_pk, func.sum(x.adjustment)).where(*where, x.kind == "account")
                .group_by(x.owner_pk))}
            customers = {r[0]: Decimal(r[1]) for r in dconn.execute(
                select(x.customer_pk, func.sum(x.customer_adjustment)).where(
                    *where, x.customer_pk.is_not(None)).group_by(x.customer_pk))}
        return n, accounts, customers

    def _plan_lock(self, report: Report, locked: int, top: int) -> int:
        n, accounts, _customers = self._sums(locked, top)
        line = (f"would lock: {n} xDR(s) seq {locked + 1}..{top}: {len(accounts)} "
                f"account(s) total {sum(accounts.values(), Decimal(0))}")
        report.actions.append(line)
        self.progress(line)
        return n

    def _move(self, conn: Connection, table: Any, kind: str, amounts: dict[int, Decimal]) -> None:
        amounts = {k: v for k, v in amounts.items() if v}
        if not amounts:
            return
        keys = sorted(amounts)
        for i in range(0, len(keys), 1000):
            part = {k: amounts[k] for k in keys[i:i + 1000]}
            conn.execute(update(table).where(table.id.in_(part)).values(
                balance=table.balance + case(part, value=table.id)))
        lk = p.site_funds_locks
        have = {r[0]: Decimal(r[1]) for r in conn.execute(select(lk.c.owner_pk, lk.c.amount).where(
            lk.c.site == self.site, lk.c.kind == kind))}
        new = [dict(site=self.site, kind=kind, owner_pk=k, amount=v)
               for k, v in amounts.items() if k not in have]
        if new:
            conn.execute(insert(lk), new)
        old = {k: v for k, v in amounts.items() if k in have}
        self._lower(conn, kind, {k: -v for k, v in old.items()})

    def _lower(self, conn: Connection, kind: str, amounts: dict[int, Decimal]) -> None:
        lk = p.site_funds_locks
        amounts = {k: v for k, v in amounts.items() if v}
        keys = sorted(amounts)
        for i in range(0, len(keys), 1000):
            part = {k: amounts[k] for k in keys[i:i + 1000]}
            conn.execute(update(lk).where(lk.c.site == self.site, lk.c.kind == kind,
                                          lk.c.owner_pk.in_(part)).values(
                amount=lk.c.amount - case(part, value=lk.c.owner_pk)))

    # ----------------------------------------------------------------- step 3
    def transfer_batch(self, report: Report, dry_run: bool = False) -> int:
        """Move the next batch; 0 when nothing is left."""
        n = hi = moved = 0
        try:
            with self.primary.begin() as conn:
                locked, moved = self._watermark(conn, lock=True)
                if self._packed_path:
                    n, hi, doc = self._packed(moved)
                    if n and hi <= locked and not dry_run:
                        self._prefetch(hi)  # the next batch, read while this one commits
                else:
                    rows = self._read_rows(moved)
                    n, hi = len(rows), int(rows[-1]["seq"]) if rows else 0
                if n == 0:
                    return 0
                if hi > locked or dry_run:
                    raise _Undo
                if self._packed_path:
                    self._apply_packed(conn, doc)
                else:
                    self._apply_rows(conn, rows)
                conn.execute(update(p.site_watermarks).where(
                    p.site_watermarks.c.site == self.site,
                    p.site_watermarks.c.transferred_upto == moved).values(
                    transferred_upto=hi, updated_at=utcnow()))
        except _Undo:
            if dry_run:
                self.progress(f"would transfer {n} xDR(s) seq {moved + 1}..{hi} "
                              f"(and more in batches of {self.batch})")
                return 0
            # rows that reached the delta after the lock: lock them first
            self.lock_funds(report)
            return self.transfer_batch(report)
        except SQLAlchemyError as exc:
            raise _error("xDR transfer", exc) from exc
        report.transferred += n
        report.batches += 1
        return n

    @property
    def _packed_path(self) -> bool:
        # Both on MariaDB/MySQL: the delta server writes the batch as one
        # multi-row VALUES list (QUOTE() escapes every field) and the primary
        # loads it into a temporary table, so no row is parsed or escaped in
        # Python (several times faster than executemany or JSON_TABLE here).
        return self.primary.dialect.name == "mysql" and self.delta.dialect.name == "mysql"

    def _read_rows(self, moved: int) -> list[Any]:
        with self.delta.connect() as dconn:
            return [r._mapping for r in dconn.execute(
                select(d.delta_xdrs).where(d.delta_xdrs.c.seq > moved)
                .order_by(d.delta_xdrs.c.seq).limit(self.batch))]

    def _apply_rows(self, conn: Connection, rows: list[Any]) -> None:
        now = utcnow()
        acct = [self._xdr(r, now) for r in rows if r["kind"] == "account"]
        vend = [self._xdr(r, now) for r in rows if r["kind"] == "vendor"]
        stops = sorted({r["stop_key"] for r in rows if r["stop_key"]})
        if stops:
            verb = "OR IGNORE" if conn.dialect.name == "sqlite" else "IGNORE"
            conn.execute(insert(m.ProcessedAccounting).prefix_with(verb),
                         [{"session_key": k, "processed_at": now} for k in stops])
        if acct:
            conn.execute(insert(m.AccountXDR), acct)
        if vend:
            conn.execute(insert(m.VendorXDR), vend)
        self._lower(conn, "account", _sum_by([r for r in rows if r["kind"] == "account"],
                                             "owner_pk", "adjustment"))
        self._lower(conn, "customer", _sum_by(rows, "customer_pk", "customer_adjustment"))
        vendors = _sum_by([r for r in rows if r["kind"] == "vendor"], "owner_pk", "adjustment")
        vendors = {k: v for k, v in vendors.items() if v}
        if vendors:
            conn.execute(update(m.Vendor).where(m.Vendor.id.in_(vendors)).values(
                balance=m.Vendor.balance + case(vendors, value=m.Vendor.id)))

    def _packed(self, moved: int) -> tuple[int, int, str]:
        """The batch after ``moved``: prefetched if that read was for this watermark."""
        pre, self._prefetched = self._prefetched, None
        if pre is not None and pre[0] == moved:
            try:
                return pre[1].result()
            except SQLAlchemyError as exc:
                log.info("prefetched batch unusable (%s); reading it again", exc)
        return self._read_packed(moved)

    def _prefetch(self, after: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="failback-read")
        self._prefetched = (after, self._pool.submit(self._read_packed, after))

    def _read_packed(self, moved: int) -> tuple[int, int, str]:
        with self.delta.connect() as dconn:
            dconn.exec_driver_sql("SET SESSION group_concat_max_len = 1073741824")
            row = dconn.execute(text(packed.READ_PACKED), {"after": moved, "n": self.batch}).one()
        return int(row[0]), int(row[1] or 0), str(row[2] or "")

    def _apply_packed(self, conn: Connection, values: str) -> None:
        for sql in packed.BATCH_TABLE:
            conn.exec_driver_sql(sql)
        packed.insert_values(conn, "failback_batch", values)
        for sql in packed.APPLY_BATCH:
            conn.execute(text(sql), {"site": self.site})

    def _xdr(self, r: Any, now: dt.datetime) -> dict[str, Any]:
        # <site>#<seq> first: unique whatever the original key's length
        key = f"{self.site}#{r['seq']}|{r['session_key']}"[:191]
        row: dict[str, Any] = dict(
            session_key=key, conf_id=r["conf_id"], cli=r["cli"], cld=r["cld"],
            connect_time=r["connect_time"], disconnect_time=r["disconnect_time"],
            duration=r["duration"], charged_duration=r["charged_duration"], amount=r["amount"],
            tariff=r["tariff"], rate_prefix=r["rate_prefix"],
            disconnect_cause=r["disconnect_cause"], created_at=r["created_at"] or now)
        if r["kind"] == "account":
            row.update(account_id=r["owner_pk"], node_ip=r["peer_ip"])
        else:
            row.update(vendor_id=r["owner_pk"], connection_id=r["connection_pk"],
                       remote_ip=r["peer_ip"])
        return row

    # ------------------------------------------------------------ login holds
    def carry_logins(self, report: Report, dry_run: bool = False) -> int:
        """The stand-alone login holds still live go to the primary's
        accounts ([Fraud_Detection], debit accounts): a call that began in
        stand-alone and talks on past failback keeps its account to itself
        there too, and its Stop, which the primary now gets, gives the hold
        back (SqlStore: only the holding call's Stop does). Each hold is
        set by one conditional UPDATE that never takes an account another
        call holds on the primary (that one is counted and logged, and the
        primary's own hold stands); setting one again is harmless, so a
        kill -9 and a re-run need nothing more."""
        now = utcnow()
        lg = d.delta_logins.c
        try:
            with self.delta.connect() as conn:
                holds = conn.execute(select(lg.account_pk, lg.login_call, lg.login_until).where(
                    lg.login_call != LOGIN_FREE,
                    (lg.login_until.is_(None)) | (lg.login_until >= now))
                    .order_by(lg.account_pk)).all()
        except SQLAlchemyError as exc:
            raise _error("delta database", exc) from exc
        if dry_run or not holds:
            if holds:
                self.progress(f"would carry {len(holds)} login hold(s) to the primary")
            return len(holds)
        a = m.Account
        carried = 0
        try:
            with self.primary.begin() as conn:
                for pk, call, until in holds:
                    carried += conn.execute(update(a).where(
                        a.id == pk,
                        (a.login_call == LOGIN_FREE) | (a.login_call == call) |
                        (a.login_until < now))
                        .values(login_call=call, login_until=until)).rowcount
        except SQLAlchemyError as exc:
            raise _error("primary database", exc) from exc
        if carried < len(holds):
            log.warning("%d stand-alone login hold(s) not carried: another call holds those "
                        "accounts on the primary", len(holds) - carried)
        report.actions.append(f"carried {carried} login hold(s) to the primary")
        self.progress(f"carried {carried} of {len(holds)} login hold(s) to the primary")
        return carried

    # ------------------------------------------------------------- the whole
    def run(self, switch_to_standby: Callable[[], object], dry_run: bool = False) -> Report:
        report = Report()
        start = time.monotonic()
        if not dry_run:
            self.prepare()
        self.lock_funds(report, dry_run)
        if dry_run:
            self.carry_logins(report, dry_run=True)
            b = self.backlog()
            self.progress(f"would switch to stand-by, then transfer {b.pending_xdrs} xDR(s) "
                          f"in batches of {self.batch}")
            return report
        switch_to_standby()
        report.actions.append("mode: stand-by")
        self.progress("mode: stand-by (this site's RADIUS no longer answers)")
        time.sleep(self.settle)
        self.lock_funds(report)  # what was charged while the switch happened
        self.carry_logins(report)  # no new stand-alone hold after the switch
        total = self.backlog().pending_xdrs
        done = 0
        try:
            while True:
                n = self.transfer_batch(report)
                if n == 0:
                    break
                done += n
                el = time.monotonic() - start
                self.progress(f"transferred {done}/{total} xDR(s) "
                              f"({done / el if el else 0:.0f}/s)")
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool, self._prefetched = None, None
        report.seconds = time.monotonic() - start
        report.actions.append(f"transferred {report.transferred} xDR(s) in "
                              f"{report.batches} batch(es)")
        return report


def primary_url(cfg: Any) -> Any:
    from sqlalchemy.engine import make_url

    url = make_url(cfg.get("Standby", "Primary_URL"))
    if url.get_backend_name() == "sqlite":
        from pathlib import Path

        if url.database and not Path(url.database).is_absolute():
            url = url.set(database=str(cfg.path("Site", "State_Dir") / url.database))
        return url
    if cfg.get("Standby", "Primary_User"):
        url = url.set(username=cfg.get("Standby", "Primary_User"))
    if cfg.get("Standby", "Primary_Password").reveal():
        url = url.set(password=cfg.get("Standby", "Primary_Password").reveal())
    return url


__all__ = ["Backlog", "DatabaseUnavailable", "Failback", "FailbackError", "Report"]


def from_config(cfg: Any, batch: int | None = None,
                progress: Callable[[str], None] | None = None) -> Failback:
    """The failback of this site as ``vigil.conf`` describes it (primary, delta, batch size)."""
    from billing.db import engine_for_url

    primary = engine_for_url(primary_url(cfg),
                             connect_timeout=cfg.get("Watchdog", "Connect_Timeout_sec") + 4,
                             pool_size=2)
    return Failback(primary, d.delta_engine(cfg), cfg.get("Site", "Name"),
                    batch or cfg.get("Delta", "Failback_Batch"), progress)
