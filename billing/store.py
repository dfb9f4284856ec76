"""The one small interface through which the engine reaches money.

Read an account with its funds, reserve funds for a call being authorized,
and apply accounting (charges and xDRs) atomically. The secondary site's
stand-alone mode can put "stand-by snapshot + delta database" behind the
same interface without touching rating or RADIUS code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from billing import models as m
from billing import quarantine
from billing.db import DatabaseError, DatabaseUnavailable, is_unavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountView:
    pk: int
    account_id: str
    customer_id: int
    customer_name: str
    product_id: int
    billing_model: str  # debit | credit
    balance: Decimal
    credit_limit: Decimal
    voip_password: str
    blocked: bool
    customer_blocked: bool
    activation_date: dt.datetime | None
    expiration_date: dt.datetime | None
    preferred_lang: str
    redirect_number: str
    currency: str
    customer_balance: Decimal
    customer_credit_limit: Decimal | None

    @property
    def own_funds(self) -> Decimal:
        """What the account may still spend, before calls in progress."""
        debit = self.billing_model == "debit"
        funds = self.balance if debit else self.credit_limit - self.balance
        if self.billing_model == "credit" and self.customer_credit_limit is not None:
            funds = min(funds, self.customer_credit_limit - self.customer_balance)
        return funds


@dataclass
class Reservation:
    """What the engine decided for a call being authorized."""

    credit_time: int
    amount: Decimal


@dataclass
class XDR:
    table: str  # account | vendor
    owner_pk: int  # account pk or vendor pk
    connection_pk: int | None
    session_key: str
    conf_id: str
    cli: str
    cld: str
    peer_ip: str
    connect_time: dt.datetime | None
    disconnect_time: dt.datetime | None
    duration: int
    charged_duration: int
    amount: Decimal
    tariff: str
    rate_prefix: str
    disconnect_cause: str


@dataclass
class AccountingOp:
    """One accounting record's effect, applied all-or-nothing."""

    session_key: str
    kind: str  # start | interim | stop | quarantine | reserve | noop
    call_key: str = ""
    leg: str = ""
    account_pk: int | None = None
    billing_model: str = "debit"
    customer_pk: int | None = None
    node_ip: str = ""
    cli: str = ""
    cld: str = ""
    expires_at: dt.datetime | None = None
    reserved: Decimal = Decimal(0)
    xdrs: list[XDR] = field(default_factory=list)
    quarantine_reason: str = ""
    raw: dict[str, object] = field(default_factory=dict)


class BillingStore(Protocol):
    def find_account(self, account_id: str) -> AccountView | None: ...

    def reserve(self, account: AccountView, call_key: str, node_ip: str, cli: str, cld: str,
                now: dt.datetime, lifetime: int,
                decide: Callable[[Decimal], Reservation | None]) -> Reservation | None: ...

    def available(self, account: AccountView, now: dt.datetime,
                  exclude_call: str = "") -> Decimal: ...

    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool | None]: ...


def _translate(exc: SQLAlchemyError) -> DatabaseError:
    if is_unavailable(exc):
        return DatabaseUnavailable(f"billing database unavailable: {exc.__class__.__name__}: "
                                   f"{str(exc.orig) if hasattr(exc, 'orig') else exc}")
    return DatabaseError(str(exc))


class SqlStore:
    """The billing database as the engine sees it (SQLite or MariaDB)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = engine.execution_options(sqlite_read_only=True)
        self._for_update = engine.dialect.name != "sqlite"

    # ------------------------------------------------------------- reading
    _ACCOUNT_COLUMNS = (
        m.Account.id, m.Account.account_id, m.Account.customer_id, m.Customer.name,
        m.Account.product_id, m.Account.billing_model, m.Account.balance,
        m.Account.credit_limit, m.Account.voip_password, m.Account.blocked, m.Customer.blocked,
        m.Account.activation_date, m.Account.expiration_date, m.Account.preferred_lang,
        m.Account.redirect_number, m.Customer.currency, m.Customer.balance,
        m.Customer.credit_limit,
    )

    def _account_query(self, conn: Connection, where: object,
                       lock: bool = False) -> AccountView | None:
        q = (select(*self._ACCOUNT_COLUMNS)
             .join(m.Customer, m.Customer.id == m.Account.customer_id).where(where))
        if lock and self._for_update:
            q = q.with_for_update(of=m.Account.__table__)
        row = conn.execute(q).first()
        return AccountView(*row) if row is not None else None

    def find_account(self, account_id: str) -> AccountView | None:
        try:
            with self.reader.connect() as conn:
                return self._account_query(conn, m.Account.account_id == account_id)
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc

    def find_accounts(self, pks: Sequence[int]) -> list[AccountView]:
        """Many accounts in few queries (the engine's cache refresh)."""
        out: list[AccountView] = []
        try:
            with self.reader.connect() as conn:
                for i in range(0, len(pks), 1000):
                    q = (select(*self._ACCOUNT_COLUMNS)
                         .join(m.Customer, m.Customer.id == m.Account.customer_id)
                         .where(m.Account.id.in_(pks[i:i + 1000])))
                    out.extend(AccountView(*row) for row in conn.execute(q))
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc
        return out

    def _reserved(self, conn: Connection, account_pk: int, now: dt.datetime,
                  exclude_call: str) -> Decimal:
        q = select(func.coalesce(func.sum(m.ActiveCall.reserved), 0)).where(
            m.ActiveCall.account_id == account_pk, m.ActiveCall.expires_at > now,
            m.ActiveCall.conf_id != exclude_call)
        return Decimal(conn.execute(q).scalar_one())

    def available(self, account: AccountView, now: dt.datetime,
                  exclude_call: str = "") -> Decimal:
        try:
            with self.engine.connect() as conn:
                return account.own_funds - self._reserved(conn, account.pk, now, exclude_call)
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc

    # ------------------------------------------------------------ reserving
    def reserve(self, account: AccountView, call_key: str, node_ip: str, cli: str, cld: str,
                now: dt.datetime, lifetime: int,
                decide: Callable[[Decimal], Reservation | None]) -> Reservation | None:
        """Lock the account, see what is left after other calls, let ``decide``
        choose, and hold that amount for this call; all in one transaction so
        two calls on one account never spend the same money."""
        try:
            with self.engine.begin() as conn:
                fresh = self._account_query(conn, m.Account.id == account.pk, lock=True)
                if fresh is None:
                    return None
                funds = fresh.own_funds - self._reserved(conn, account.pk, now, call_key)
                decision = decide(funds)
                if decision is None:
                    return None
                expires = now + dt.timedelta(seconds=decision.credit_time + lifetime)
                conn.execute(delete(m.ActiveCall).where(m.ActiveCall.conf_id == call_key,
                                                        m.ActiveCall.leg == "authorize"))
                conn.execute(insert(m.ActiveCall).values(
                    conf_id=call_key, leg="authorize", account_id=account.pk,
                    node_ip=node_ip[:45], cli=cli[:64], cld=cld[:64],  # shown, not identity
                    reserved=decision.amount, started_at=now, updated_at=now,
                    expires_at=expires))
                return decision
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc

    # ----------------------------------------------------------- accounting
    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool | None]:
        """Apply records in one transaction (group commit).

        Returns, per record, False when it had been applied before (a
        duplicate: nothing charged again). If the batch fails for a reason
        other than the database being gone, each record is retried alone so
        that one bad record cannot hold back the others; a Stop that still
        cannot be stored is quarantined in its place (the op is turned into
        a quarantine, see billing/quarantine.py), and a record that cannot
        even be quarantined gets None: not stored, not to be acknowledged.
        """
        if not ops:
            return []
        try:
            with self.engine.begin() as conn:
                return list(self._apply_batch(conn, ops, now))
        except SQLAlchemyError as exc:
            err = _translate(exc)
            if isinstance(err, DatabaseUnavailable):
                raise err from exc
            log.warning("group commit of %d records failed (%s); applying one by one",
                        len(ops), err)
        results: list[bool | None] = []
        for op in ops:
            results.append(self._apply_alone(op, now))
        return results

    def _apply_alone(self, op: AccountingOp, now: dt.datetime) -> bool | None:
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    return self._apply_batch(conn, [op], now)[0]
            except SQLAlchemyError as exc:
                err = _translate(exc)
                if isinstance(err, DatabaseUnavailable):
                    raise err from exc
                if attempt or not quarantine.can_replace(op):
                    log.error("accounting record %s cannot be stored: %s; not acknowledged",
                              op.session_key, err)
                    return None
                log.error("accounting record %s cannot be stored (%s): quarantined",
                          op.session_key, err)
                quarantine.replace(op, f"cannot be stored: {err}")
        return None

    def _insert_ignore(self, table: Any) -> Any:
        stmt = insert(table)
        return stmt.prefix_with("OR IGNORE" if self.engine.dialect.name == "sqlite"
                                else "IGNORE")

    def _apply_batch(self, conn: Connection, ops: Sequence[AccountingOp],
                     now: dt.datetime) -> list[bool]:
        """Few statements for many records: one look-up of the records seen
        before, multi-row inserts, one balance update per account."""
        keyed = [op.session_key for op in ops if op.kind in ("stop", "quarantine")]
        seen: set[str] = set()
        if keyed:
            seen = set(conn.execute(select(m.ProcessedAccounting.session_key).where(
                m.ProcessedAccounting.session_key.in_(set(keyed)))).scalars())
        results: list[bool] = []
        processed, quarantined, starts, reserves = [], [], [], []
        acct_xdrs, vend_xdrs, ended, interim = [], [], [], []
        acct_delta: dict[int, Decimal] = {}
        cust_delta: dict[int, Decimal] = {}
        vend_delta: dict[int, Decimal] = {}
        for op in ops:
            if op.kind == "noop":
                results.append(True)
                continue
            if op.kind in ("start", "reserve"):
                row = dict(conf_id=op.call_key[:128], leg=op.leg, account_id=op.account_pk,
                           node_ip=op.node_ip[:45], cli=op.cli[:64], cld=op.cld[:64],
                           reserved=op.reserved, started_at=now, updated_at=now,
                           expires_at=op.expires_at or now)
                (starts if op.kind == "start" else reserves).append(row)
                results.append(True)
                continue
            if op.kind == "interim":
                interim.append(op.call_key)
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
            ended.append(op.call_key)
            for x in op.xdrs:
                (acct_xdrs if x.table == "account" else vend_xdrs).append(self._xdr_row(x, now))
                if x.amount == 0:
                    continue
                if x.table == "account":
                    sign = -1 if op.billing_model == "debit" else 1
                    acct_delta[x.owner_pk] = acct_delta.get(x.owner_pk, Decimal(0)) + \
                        sign * x.amount
                    if op.billing_model == "credit" and op.customer_pk is not None:
                        cust_delta[op.customer_pk] = cust_delta.get(
                            op.customer_pk, Decimal(0)) + x.amount
                else:
                    vend_delta[x.owner_pk] = vend_delta.get(x.owner_pk, Decimal(0)) + x.amount
        if processed:
            conn.execute(insert(m.ProcessedAccounting), processed)
        if quarantined:
            conn.execute(insert(m.QuarantinedAccounting), quarantined)
        if ended:
            conn.execute(delete(m.ActiveCall).where(m.ActiveCall.conf_id.in_(set(ended))))
        if reserves:
            conn.execute(delete(m.ActiveCall).where(
                m.ActiveCall.leg == "authorize",
                m.ActiveCall.conf_id.in_({r["conf_id"] for r in reserves})))
            # a call that ended in this same batch keeps no reservation
            live = [r for r in reserves if r["conf_id"] not in set(ended)]
            if live:
                conn.execute(insert(m.ActiveCall), live)
        if starts:
            conn.execute(self._insert_ignore(m.ActiveCall.__table__), starts)
        if interim:
            conn.execute(update(m.ActiveCall).where(
                m.ActiveCall.conf_id.in_(set(interim))).values(updated_at=now))
        if acct_xdrs:
            conn.execute(insert(m.AccountXDR), acct_xdrs)
        if vend_xdrs:
            conn.execute(insert(m.VendorXDR), vend_xdrs)
        for table, deltas in ((m.Account, acct_delta), (m.Customer, cust_delta),
                              (m.Vendor, vend_delta)):
            if deltas:
                # One statement for all the accounts of the batch: a round trip
                # per account would cost more than the rest of the commit.
                conn.execute(update(table).where(table.id.in_(sorted(deltas))).values(
                    balance=table.balance + case(deltas, value=table.id)))
        return results

    @staticmethod
    def _xdr_row(x: XDR, now: dt.datetime) -> dict[str, Any]:
        row: dict[str, Any] = dict(
            session_key=x.session_key, conf_id=x.conf_id[:128], cli=x.cli[:64],
            cld=x.cld[:64], connect_time=x.connect_time, disconnect_time=x.disconnect_time,
            duration=x.duration, charged_duration=x.charged_duration, amount=x.amount,
            tariff=x.tariff[:64], rate_prefix=x.rate_prefix,
            disconnect_cause=x.disconnect_cause[:16], created_at=now)
        if x.table == "account":
            row.update(account_id=x.owner_pk, node_ip=x.peer_ip[:45])
        else:
            row.update(vendor_id=x.owner_pk, connection_id=x.connection_pk,
                       remote_ip=x.peer_ip[:45])
        return row

    def load_reservations(self, now: dt.datetime) -> list[tuple[int, str, Decimal, float]]:
        """Reservations of calls in progress: (account pk, call key, amount, seconds left)."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(
                    m.ActiveCall.account_id, m.ActiveCall.conf_id, m.ActiveCall.reserved,
                    m.ActiveCall.expires_at).where(
                    m.ActiveCall.leg == "authorize", m.ActiveCall.expires_at > now,
                    m.ActiveCall.account_id.is_not(None))).all()
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc
        return [(r[0], r[1], Decimal(r[2]), (r[3] - now).total_seconds()) for r in rows]

    def expire_calls(self, now: dt.datetime) -> int:
        """Forget calls whose Stop never came (their lifetime ran out)."""
        try:
            with self.engine.begin() as conn:
                return conn.execute(delete(m.ActiveCall).where(
                    m.ActiveCall.expires_at < now)).rowcount or 0
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc
