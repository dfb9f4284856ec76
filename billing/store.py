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
from typing import Protocol

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from billing import models as m
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
    kind: str  # start | interim | stop | quarantine | noop
    call_key: str = ""
    leg: str = ""
    account_pk: int | None = None
    billing_model: str = "debit"
    customer_pk: int | None = None
    node_ip: str = ""
    cli: str = ""
    cld: str = ""
    expires_at: dt.datetime | None = None
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

    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool]: ...


def _translate(exc: SQLAlchemyError) -> DatabaseError:
    if is_unavailable(exc):
        return DatabaseUnavailable(f"billing database unavailable: {exc.__class__.__name__}: "
                                   f"{str(exc.orig) if hasattr(exc, 'orig') else exc}")
    return DatabaseError(str(exc))


class SqlStore:
    """The billing database as the engine sees it (SQLite or MariaDB)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
            with self.engine.connect() as conn:
                return self._account_query(conn, m.Account.account_id == account_id)
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc

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
                    conf_id=call_key, leg="authorize", account_id=account.pk, node_ip=node_ip,
                    cli=cli, cld=cld, reserved=decision.amount, started_at=now, updated_at=now,
                    expires_at=expires))
                return decision
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc

    # ----------------------------------------------------------- accounting
    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool]:
        """Apply records in one transaction (group commit).

        Returns, per record, False when it had been applied before (a
        duplicate: nothing charged again). If the batch fails for a reason
        other than the database being gone, each record is retried alone so
        that one bad record cannot hold back the others; a record that still
        fails raises.
        """
        if not ops:
            return []
        try:
            with self.engine.begin() as conn:
                return [self._apply_one(conn, op, now) for op in ops]
        except SQLAlchemyError as exc:
            err = _translate(exc)
            if isinstance(err, DatabaseUnavailable) or len(ops) == 1:
                raise err from exc
            log.warning("group commit of %d records failed (%s); applying one by one",
                        len(ops), err)
        results = []
        for op in ops:
            try:
                with self.engine.begin() as conn:
                    results.append(self._apply_one(conn, op, now))
            except SQLAlchemyError as exc:
                raise _translate(exc) from exc
        return results

    def _seen(self, conn: Connection, session_key: str, now: dt.datetime) -> bool:
        """Claim a record; False if it had been claimed (processed) before."""
        exists = conn.execute(select(m.ProcessedAccounting.session_key).where(
            m.ProcessedAccounting.session_key == session_key)).first()
        if exists:
            return True
        conn.execute(insert(m.ProcessedAccounting).values(session_key=session_key,
                                                          processed_at=now))
        return False

    def _apply_one(self, conn: Connection, op: AccountingOp, now: dt.datetime) -> bool:
        if op.kind == "noop":
            return True
        if op.kind == "start":
            exists = conn.execute(select(m.ActiveCall.id).where(
                m.ActiveCall.conf_id == op.call_key, m.ActiveCall.leg == op.leg)).first()
            if exists:
                return False
            conn.execute(insert(m.ActiveCall).values(
                conf_id=op.call_key, leg=op.leg, account_id=op.account_pk, node_ip=op.node_ip,
                cli=op.cli, cld=op.cld, reserved=Decimal(0), started_at=now, updated_at=now,
                expires_at=op.expires_at or now))
            return True
        if op.kind == "interim":
            conn.execute(update(m.ActiveCall).where(
                m.ActiveCall.conf_id == op.call_key).values(
                    updated_at=now, expires_at=op.expires_at or now))
            return True
        if self._seen(conn, op.session_key, now):
            return False
        if op.kind == "quarantine":
            conn.execute(insert(m.QuarantinedAccounting).values(
                session_key=op.session_key, reason=op.quarantine_reason[:255],
                attributes=json.dumps(op.raw, default=str)[:8000], created_at=now))
            return True
        # stop: the call is over; its reservation and in-progress rows go.
        conn.execute(delete(m.ActiveCall).where(m.ActiveCall.conf_id == op.call_key))
        for x in op.xdrs:
            self._insert_xdr(conn, x, now)
            if x.amount == 0:
                continue
            if x.table == "account":
                sign = -1 if op.billing_model == "debit" else 1
                conn.execute(update(m.Account).where(m.Account.id == x.owner_pk).values(
                    balance=m.Account.balance + sign * x.amount))
                if op.billing_model == "credit" and op.customer_pk is not None:
                    conn.execute(update(m.Customer).where(m.Customer.id == op.customer_pk)
                                 .values(balance=m.Customer.balance + x.amount))
            else:
                conn.execute(update(m.Vendor).where(m.Vendor.id == x.owner_pk).values(
                    balance=m.Vendor.balance + x.amount))
        return True

    def expire_calls(self, now: dt.datetime) -> int:
        """Forget calls whose Stop never came (their lifetime ran out)."""
        try:
            with self.engine.begin() as conn:
                return conn.execute(delete(m.ActiveCall).where(
                    m.ActiveCall.expires_at < now)).rowcount or 0
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc

    def _insert_xdr(self, conn: Connection, x: XDR, now: dt.datetime) -> None:
        common = dict(session_key=x.session_key, conf_id=x.conf_id[:128], cli=x.cli[:64],
                      cld=x.cld[:64], connect_time=x.connect_time,
                      disconnect_time=x.disconnect_time, duration=x.duration,
                      charged_duration=x.charged_duration, amount=x.amount,
                      tariff=x.tariff[:64], rate_prefix=x.rate_prefix,
                      disconnect_cause=x.disconnect_cause[:16], created_at=now)
        try:
            if x.table == "account":
                conn.execute(insert(m.AccountXDR).values(account_id=x.owner_pk,
                                                         node_ip=x.peer_ip[:45], **common))
            else:
                conn.execute(insert(m.VendorXDR).values(vendor_id=x.owner_pk,
                                                        connection_id=x.connection_pk,
                                                        remote_ip=x.peer_ip[:45], **common))
        except IntegrityError:
            # The processed-records table already guards against repeats; a
            # clash here means the same xDR key from a different record, which
            # is a bug worth stopping for, not a duplicate to hide.
            raise
