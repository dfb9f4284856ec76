"""The billing store of the secondary site.

In stand-alone mode: the stand-by snapshot (read only) plus the delta
database. Effective balance = stand-by balance - this site's funds locks on
the primary (replicated) + delta adjustments not yet transferred, so the
source's example holds: $98.00 + $1.20 = $99.20 after the first call, and
the third call gets only the $0.30 left under the $100 credit limit.

Every charge, xDR and reservation is written to the delta in one
transaction before the engine answers; when the delta cannot be written
the store raises :class:`~billing.db.DatabaseUnavailable` and the RADIUS
server does not answer (the gateway retries), rather than charge what cannot
be recorded.

In stand-by mode every call raises :class:`NotServing` (a
``DatabaseUnavailable``), so this site's RADIUS stays silent and the gateways
keep using the primary; the self-test account is answered from
configuration by the engine and keeps radcheck content.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from billing.db import DatabaseError, DatabaseUnavailable, is_unavailable
from billing.store import (
    LOGIN_FREE,
    AccountingOp,
    AccountView,
    Refusal,
    Reservation,
    SqlStore,
)
from redundancy.site import delta as d
from redundancy.site import primary_tables as p
from vigil.site_mode import ModeWatcher, mode_path

log = logging.getLogger(__name__)


class NotServing(DatabaseUnavailable):
    """This site is in stand-by: its RADIUS must not answer."""


def _delta_error(exc: SQLAlchemyError) -> DatabaseError:
    if is_unavailable(exc):
        return DatabaseUnavailable(f"delta database unavailable: {exc.__class__.__name__}: "
                                   f"{getattr(exc, 'orig', exc)}")
    return DatabaseError(f"delta database: {exc}")


def _accounts_of(ops: Sequence[AccountingOp]) -> set[int]:
    """The accounts whose money or login hold a batch reads or writes."""
    pks: set[int] = set()
    for op in ops:
        if op.kind in ("reserve", "login") and op.reserve is not None:
            pks.add(op.reserve.account_pk)
        elif op.kind == "stop":
            pks.update(pk for pk in (op.account_pk, op.logout_pk) if pk is not None)
    return pks


class StandaloneStore:
    """Stand-by snapshot + delta database behind the engine's store interface."""

    def __init__(self, standby: Engine, delta: Engine, site: str,
                 sweep_cutoff: Callable[[dt.datetime], dt.datetime] | None = None) -> None:
        self.standby = SqlStore(standby)
        self.standby_engine = standby
        self.delta = delta
        self.site = site
        # As SqlStore's (billing/db_clock.py): a forward jump of billing
        # time forgets no call of the delta early.
        self.sweep_cutoff = sweep_cutoff
        self._ignore_word = "OR IGNORE" if delta.dialect.name == "sqlite" else "IGNORE"
        # Orders this process's threads; other engine processes on the same
        # delta are ordered by the accounts' row locks (_lock_accounts).
        self._lock = threading.Lock()
        self._schema_ready = False
        # Accounts whose delta_logins row this process has made sure of:
        # rows are never deleted, so each costs its own transaction once.
        self._rows_made: set[int] = set()

    def ensure_schema(self) -> None:
        """Create the delta tables once (the delta may have been down at start)."""
        if self._schema_ready:
            return
        try:
            d.create(self.delta)
        except SQLAlchemyError as exc:
            raise _delta_error(exc) from exc
        self._schema_ready = True

    # ---------------------------------------------------------------- snapshot
    def _primary_view(self, acct: AccountView) -> tuple[int, Decimal, Decimal]:
        """(transferred_upto, account lock, customer lock) as replicated here."""
        try:
            with self.standby_engine.connect() as conn:
                wm = conn.execute(select(p.site_watermarks.c.transferred_upto).where(
                    p.site_watermarks.c.site == self.site)).scalar()
                locks = dict(conn.execute(select(
                    p.site_funds_locks.c.kind, p.site_funds_locks.c.amount).where(
                    p.site_funds_locks.c.site == self.site,
                    ((p.site_funds_locks.c.kind == "account")
                     & (p.site_funds_locks.c.owner_pk == acct.pk))
                    | ((p.site_funds_locks.c.kind == "customer")
                       & (p.site_funds_locks.c.owner_pk == acct.customer_id)))).all())
        except SQLAlchemyError as exc:
            if "site_watermarks" in str(exc) or "site_funds_locks" in str(exc):
                return 0, Decimal(0), Decimal(0)  # never failed back: no tables yet
            raise DatabaseUnavailable(f"stand-by database: {exc}") from exc
        return (int(wm or 0), Decimal(locks.get("account", 0)),
                Decimal(locks.get("customer", 0)))

    def _adjustments(self, conn: Connection, acct: AccountView, after: int
                     ) -> tuple[Decimal, Decimal]:
        x = d.delta_xdrs.c
        own = conn.execute(select(func.coalesce(func.sum(x.adjustment), 0)).where(
            x.kind == "account", x.owner_pk == acct.pk, x.seq > after)).scalar_one()
        cust = conn.execute(select(func.coalesce(func.sum(x.customer_adjustment), 0)).where(
            x.customer_pk == acct.customer_id, x.seq > after)).scalar_one()
        return Decimal(own), Decimal(cust)

    def _effective(self, conn: Connection, acct: AccountView) -> AccountView:
        wm, lock, cust_lock = self._primary_view(acct)
        own, cust = self._adjustments(conn, acct, wm)
        return replace(acct, balance=acct.balance - lock + own,
                       customer_balance=acct.customer_balance - cust_lock + cust)

    def _reserved(self, conn: Connection, account_pk: int, now: dt.datetime,
                  exclude_call: str) -> Decimal:
        c = d.delta_calls.c
        return Decimal(conn.execute(select(func.coalesce(func.sum(c.reserved), 0)).where(
            c.account_pk == account_pk, c.expires_at > now, c.call_key != exclude_call)
        ).scalar_one())

    # ------------------------------------------------------------ the Protocol
    def find_account(self, account_id: str) -> AccountView | None:
        acct = self.standby.find_account(account_id)
        if acct is None:
            return None
        try:
            with self.delta.connect() as conn:
                return self._effective(conn, acct)
        except SQLAlchemyError as exc:
            raise _delta_error(exc) from exc

    def available(self, account: AccountView, now: dt.datetime,
                  exclude_call: str = "") -> Decimal:
        try:
            with self.delta.connect() as conn:
                return account.own_funds - self._reserved(conn, account.pk, now, exclude_call)
        except SQLAlchemyError as exc:
            raise _delta_error(exc) from exc

    def reserve(self, account: AccountView, call_key: str, node_ip: str, cli: str, cld: str,
                now: dt.datetime, lifetime: int,
                decide: Callable[[Decimal], Reservation | None]) -> Reservation | None:
        fresh = self.standby.find_account(account.account_id)
        if fresh is None:
            return None
        try:
            with self._locked({fresh.pk}) as conn:
                acct = self._effective(conn, fresh)
                funds = acct.own_funds - self._reserved(conn, acct.pk, now, call_key)
                decision = decide(funds)
                if decision is None:
                    return None
                expires = now + dt.timedelta(seconds=decision.credit_time + lifetime)
                conn.execute(delete(d.delta_calls).where(
                    d.delta_calls.c.call_key == call_key[:128]))
                conn.execute(insert(d.delta_calls).values(
                    call_key=call_key[:128], account_pk=acct.pk, reserved=decision.amount,
                    expires_at=expires))
                return decision
        except SQLAlchemyError as exc:
            raise _delta_error(exc) from exc

    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool]:
        """Charges and xDRs of a batch in ONE delta transaction, then the answer."""
        if not ops:
            return []
        try:
            with self._locked(_accounts_of(ops)) as conn:
                return self._apply(conn, ops, now)
        except SQLAlchemyError as exc:
            raise _delta_error(exc) from exc

    @contextlib.contextmanager
    def _locked(self, account_pks: set[int]) -> Iterator[Connection]:
        """A delta transaction holding the accounts' locks (_lock_accounts).
        A lock row this process made earlier but that is gone (the delta
        made anew under a running engine) is made again, once."""
        with self._lock:
            for attempt in (1, 2):
                self._account_rows(account_pks)
                with self.delta.begin() as conn:
                    if self._lock_accounts(conn, account_pks):
                        yield conn
                        return
                if attempt == 2:
                    raise DatabaseError("delta database: the accounts' lock rows are gone")
                self._rows_made.clear()

    def _apply(self, conn: Connection, ops: Sequence[AccountingOp],
               now: dt.datetime) -> list[bool]:
        keyed = {op.session_key for op in ops if op.kind in ("stop", "quarantine")}
        seen: set[str] = set()
        if keyed:
            seen = set(conn.execute(select(d.delta_processed.c.session_key).where(
                d.delta_processed.c.session_key.in_(keyed))).scalars())
        results: list[bool] = []
        processed: list[dict[str, Any]] = []
        quarantined: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        ended: set[str] = set()
        logouts: dict[int, set[str]] = {}
        # Holds and reservations after the batch's Stops, as in normal mode
        # (SqlStore._apply_batch): a call that ended in the batch gives its
        # hold and money back before a new call asks for them.
        later: list[tuple[int, AccountingOp]] = []
        for op in ops:
            if op.kind in ("reserve", "login") and op.reserve is not None:
                later.append((len(results), op))
                results.append(False)
                continue
            if op.kind not in ("stop", "quarantine"):
                # start/interim: the delta keeps only what money needs
                results.append(True)
                continue
            if op.session_key in seen:
                results.append(False)
                continue
            seen.add(op.session_key)
            results.append(True)
            processed.append({"session_key": op.session_key, "processed_at": now})
            if op.kind == "quarantine":
                quarantined.append(dict(
                    session_key=op.session_key, reason=op.quarantine_reason[:255],
                    attributes=json.dumps(op.raw, default=str)[:8000], created_at=now))
                continue
            ended.add(op.call_key[:128])
            if op.logout_pk is not None:
                logouts.setdefault(op.logout_pk, set()).add(op.call_key[:128])
            for x in op.xdrs:
                rows.append(xdr_row(x, op, now))
        if processed:
            conn.execute(insert(d.delta_processed), processed)
        if quarantined:
            conn.execute(insert(d.delta_quarantined), quarantined)
        if rows:
            conn.execute(insert(d.delta_xdrs), rows)
        if ended:
            conn.execute(delete(d.delta_calls).where(d.delta_calls.c.call_key.in_(ended)))
        if logouts:
            # only the holds these calls took (another call's stays)
            lg = d.delta_logins.c
            conn.execute(update(d.delta_logins).where(
                lg.account_pk.in_(sorted(logouts)),
                lg.login_call.in_(sorted(set().union(*logouts.values()))))
                .values(login_call=LOGIN_FREE, login_until=None))
        for i, op in later:
            assert op.reserve is not None
            if op.call_key[:128] in ended:
                # its Stop is in this batch: nothing to hold (SqlStore._reserve_all)
                op.reserve.granted, op.reserve.refused = op.reserve.proposal, None
                results[i] = True
            elif op.kind == "reserve":
                results[i] = self._grant(conn, op, now)
            else:
                results[i] = self._hold_login(conn, op, now)
        return results

    # ------------------------------------------------------------ login hold
    def _account_rows(self, account_pks: set[int]) -> None:
        """Make sure the accounts' rows in ``delta_logins`` exist, in a
        transaction of its own: in the batch's, MariaDB would take the
        duplicate's shared lock and then need it exclusive, and two engines
        doing so deadlock. The row holds the account's login hold and is
        also the account's lock in the delta (``_lock_accounts``)."""
        missing = account_pks - self._rows_made
        if not missing:
            return
        with self.delta.begin() as conn:
            conn.execute(insert(d.delta_logins).prefix_with(self._ignore_word),
                         [{"account_pk": pk, "login_call": LOGIN_FREE, "login_until": None}
                          for pk in sorted(missing)])
        self._rows_made |= missing

    @staticmethod
    def _lock_accounts(conn: Connection, account_pks: set[int]) -> bool:
        """Lock every account the batch reads money of or writes money to,
        first and in ascending order, as normal mode locks its accounts
        rows. A grant reads the delta's adjustments and reservations of
        the account and then writes its own: without the lock two engine
        processes on one MariaDB delta both read $5.00 and both granted
        $3.00 (tests/redundancy/test_site_standalone_login.py). With it the
        second waits for the first's commit and reads after it. One order
        for every batch of every engine, so they wait instead of
        deadlocking. SQLite's writers are serialized at BEGIN already.
        False when a row is missing (nothing of it was locked)."""
        if not account_pks:
            return True
        lg = d.delta_logins.c
        locked = conn.execute(select(lg.account_pk).where(
            lg.account_pk.in_(sorted(account_pks))).order_by(lg.account_pk)
            .with_for_update()).all()
        return len(locked) == len(account_pks)

    def _take_login(self, conn: Connection, account_pk: int, call_key: str,
                    until: dt.datetime | None, now: dt.datetime) -> bool:
        """The hold when it is free, this call's, or over: ONE conditional
        UPDATE, whose row count decides (the row lock orders engines)."""
        lg = d.delta_logins.c
        key = call_key[:128]
        return conn.execute(update(d.delta_logins).where(
            lg.account_pk == account_pk,
            or_(lg.login_call == LOGIN_FREE, lg.login_call == key, lg.login_until < now))
            .values(login_call=key, login_until=until)).rowcount == 1

    def _held_by_another(self, conn: Connection, account_pk: int, call_key: str,
                         now: dt.datetime) -> bool:
        """Only to name a refusal (nothing is written after it)."""
        lg = d.delta_logins.c
        row = conn.execute(select(lg.login_call, lg.login_until).where(
            lg.account_pk == account_pk)).first()
        return row is not None and row[0] not in (LOGIN_FREE, call_key[:128]) and \
            (row[1] is None or row[1] >= now)

    def _hold_login(self, conn: Connection, op: AccountingOp, now: dt.datetime) -> bool:
        """An authentication of a debit account under [Fraud_Detection]
        (SqlStore._hold_logins): granted with the hold, else refused LOGIN."""
        req = op.reserve
        assert req is not None
        ok = self._take_login(conn, req.account_pk, op.call_key, req.login_until, now)
        req.granted, req.refused = (req.proposal, None) if ok else (None, Refusal.LOGIN)
        return ok

    def _grant(self, conn: Connection, op: AccountingOp, now: dt.datetime) -> bool:
        """A reservation carried by an op (the cluster store's contract, issue 13:
        the engine proposes, the store decides with its own numbers and fills
        in ``granted`` or ``refused``): decided here from the effective balance
        and the delta's reservations, in the same delta transaction."""
        req: Any = getattr(op, "reserve", None)
        assert req is not None
        found = self.standby.find_accounts([req.account_pk])
        if not found:
            req.refused = Refusal.ACCOUNT
            return False
        acct = self._effective(conn, found[0])
        funds = acct.own_funds - self._reserved(conn, acct.pk, now, op.call_key[:128])
        decision = req.decide(funds)
        exclusive = bool(getattr(req, "exclusive_login", False))
        if decision is None:
            # the login is named first, as SqlStore._grant does
            req.refused = (Refusal.LOGIN if exclusive and self._held_by_another(
                conn, acct.pk, op.call_key, now) else Refusal.FUNDS)
            return False
        if exclusive and not self._take_login(conn, acct.pk, op.call_key, req.login_until, now):
            req.refused = Refusal.LOGIN
            return False
        expires = now + dt.timedelta(seconds=decision.credit_time + req.lifetime)
        conn.execute(delete(d.delta_calls).where(d.delta_calls.c.call_key == op.call_key[:128]))
        conn.execute(insert(d.delta_calls).values(
            call_key=op.call_key[:128], account_pk=acct.pk, reserved=decision.amount,
            expires_at=expires))
        req.granted = decision
        return True

    def expire_calls(self, now: dt.datetime) -> int:
        """Forget the delta's calls whose lifetime ran out (their money is
        free again); a hold lapses by ``login_until`` when next taken."""
        if self.sweep_cutoff is not None:
            now = self.sweep_cutoff(now)
        try:
            with self._lock, self.delta.begin() as conn:
                return conn.execute(delete(d.delta_calls).where(
                    d.delta_calls.c.expires_at < now)).rowcount or 0
        except SQLAlchemyError as exc:
            raise _delta_error(exc) from exc


def xdr_row(x: Any, op: AccountingOp, now: dt.datetime) -> dict[str, Any]:
    """A delta row: the xDR and the balance changes the primary's engine would make."""
    customer_adj = Decimal(0)
    if x.table == "account":
        adjustment = -x.amount if op.billing_model == "debit" else x.amount
        customer_pk = op.customer_pk if op.billing_model == "credit" else None
        if customer_pk is not None:
            customer_adj = x.amount
    else:
        adjustment, customer_pk = x.amount, None
    return dict(
        kind=x.table, owner_pk=x.owner_pk, customer_pk=customer_pk,
        billing_model=op.billing_model, adjustment=adjustment,
        customer_adjustment=customer_adj, connection_pk=x.connection_pk,
        session_key=x.session_key[:191], stop_key=op.session_key[:191],
        conf_id=x.conf_id[:128], cli=x.cli[:64],
        cld=x.cld[:64], peer_ip=x.peer_ip[:45], connect_time=x.connect_time,
        disconnect_time=x.disconnect_time, duration=x.duration,
        charged_duration=x.charged_duration, amount=x.amount, tariff=x.tariff[:64],
        rate_prefix=x.rate_prefix[:32], disconnect_cause=x.disconnect_cause[:16],
        created_at=now)


class SiteStore:
    """The secondary site's store: silent in stand-by, stand-alone store otherwise.

    The mode is read from the mode file on every call (a stat), so a switch
    by the watchdog or an admin takes effect at the next packet without a
    restart of the RADIUS engine.
    """

    def __init__(self, inner: StandaloneStore, mode_file: Path) -> None:
        self.inner = inner
        self.watcher = ModeWatcher(mode_file)

    def _serving(self) -> StandaloneStore:
        m = self.watcher.current()
        if not m.standalone:
            raise NotServing("site in stand-by mode: not answering (gateways use the primary)")
        self.inner.ensure_schema()
        return self.inner

    def find_account(self, account_id: str) -> AccountView | None:
        return self._serving().find_account(account_id)

    def available(self, account: AccountView, now: dt.datetime,
                  exclude_call: str = "") -> Decimal:
        return self._serving().available(account, now, exclude_call)

    def reserve(self, account: AccountView, call_key: str, node_ip: str, cli: str, cld: str,
                now: dt.datetime, lifetime: int,
                decide: Callable[[Decimal], Reservation | None]) -> Reservation | None:
        return self._serving().reserve(account, call_key, node_ip, cli, cld, now, lifetime,
                                       decide)

    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool]:
        if all(op.kind == "noop" for op in ops):
            return [True] * len(ops)  # radcheck's accounting probe: nothing to store
        return self._serving().apply(ops, now)

    def expire_calls(self, now: dt.datetime) -> int:
        if not self.watcher.current().standalone:
            return 0
        return self.inner.expire_calls(now)

    # the rest of the cluster store's Protocol (issue 13): nothing cached here
    def in_memory(self, account_id: str) -> bool:
        return False

    def forget(self, account_id: str) -> None:
        return None  # nothing is cached

    def refresh_accounts(self, holds: bool = True, share: tuple[int, int] = (0, 1)) -> int:
        return 0

    def prefetch(self, account_ids: Iterable[str]) -> int:
        return 0

    def reload(self) -> None:
        """SIGHUP: nothing to forget (every answer reads the snapshot and delta)."""

    def holding(self) -> AbstractContextManager[None]:
        # Each stand-alone batch takes its own connections (snapshot and
        # delta, the delta's lock order): nothing is kept between batches.
        return contextlib.nullcontext()

    def release_held(self) -> None:
        return None


def site_store(cfg: Any, standby: Engine,
               sweep_cutoff: Callable[[dt.datetime], dt.datetime] | None = None) -> SiteStore:
    """What ``billing.app`` builds on a secondary site ([Site] Role = secondary)."""
    inner = StandaloneStore(standby, d.delta_engine(cfg), cfg.get("Site", "Name"),
                            sweep_cutoff)
    try:
        inner.ensure_schema()
    except DatabaseError as exc:
        # The delta may be down now and up when needed: stand-by does not need it.
        log.warning("delta database not ready at start (%s); stand-alone calls will get "
                    "no answer until it is", exc)
    return SiteStore(inner, mode_path(cfg.path("Site", "State_Dir")))
