"""The one small interface through which the engine reaches money.

Read an account with its funds, reserve funds for a call being authorized,
and apply accounting (charges and xDRs) atomically. The secondary site's
stand-alone mode can put "stand-by snapshot + delta database" behind the
same interface without touching rating or RADIUS code.

The database arbitrates every reservation (docs/billing.md, "the
reservation contract"): ``accounts.reserved`` is the running sum of the
account's ``active_calls.reserved``, and a reservation is granted by one
conditional UPDATE in the same transaction as its row, so any number of
engines on one database never spend the same money.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import case, delete, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from billing import account_sql, batch_sql, calls, commit_turn, grant_sql
from billing import models as m
from billing.account_sql import Converter
from billing.db import DatabaseError, DatabaseUnavailable, is_unavailable
from billing.sql_pipeline import Pipeline

log = logging.getLogger(__name__)


class BillingModel(enum.StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class OpKind(enum.StrEnum):
    START = "start"
    INTERIM = "interim"
    STOP = "stop"
    QUARANTINE = "quarantine"
    RESERVE = "reserve"
    LOGIN = "login"  # a debit account's login hold at authentication (no funds, no call)
    NOOP = "noop"


LOGIN_FREE = ""  # accounts.login_call when no call holds the account


def signed_charge(model: str, amount: Decimal) -> tuple[Decimal, Decimal]:
    """The sign rule, in one place: how a charge moves (account balance,
    customer balance). Debit balances are money left and go down; credit
    balances are money owed and go up, the customer's with them."""
    if model == BillingModel.DEBIT:
        return -amount, Decimal(0)
    return amount, amount


@dataclass(frozen=True)
class AccountView:
    pk: int
    account_id: str
    customer_id: int
    customer_name: str
    product_id: int
    billing_model: str  # BillingModel
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
    reserved: Decimal = Decimal(0)
    customer_reserved: Decimal = Decimal(0)
    login_call: str = LOGIN_FREE
    login_until: dt.datetime | None = None
    calls: int = 0
    max_calls: int | None = None
    customer_calls: int = 0
    customer_max_calls: int | None = None

    @property
    def customer_limited(self) -> bool:
        """Whether the customer's credit limit also bounds this account."""
        return self.billing_model == BillingModel.CREDIT and \
            self.customer_credit_limit is not None

    @property
    def own_funds(self) -> Decimal:
        """What the account may still spend, before calls in progress."""
        if self.billing_model == BillingModel.DEBIT:
            funds = self.balance
        else:
            funds = self.credit_limit - self.balance
        if self.customer_limited:
            assert self.customer_credit_limit is not None
            funds = min(funds, self.customer_credit_limit - self.customer_balance)
        return funds

    @property
    def funds_left(self) -> Decimal:
        """What a new call may spend: funds minus what calls in progress hold."""
        if self.billing_model == BillingModel.DEBIT:
            funds = self.balance - self.reserved
        else:
            funds = self.credit_limit - self.balance - self.reserved
        if self.customer_limited:
            assert self.customer_credit_limit is not None
            funds = min(funds, self.customer_credit_limit - self.customer_balance -
                        self.customer_reserved)
        return funds


# What the cache compares to see whether an account changed without reading
# it whole (billing.account_sql): the database's text of the columns an
# admin changes, and of all the columns; None for the latter once a commit
# moved the view away from the row it was read from (``traffic_moved``).
AccountStamp = tuple[str, str | None]


def traffic_moved(stamp: AccountStamp | None) -> AccountStamp | None:
    """The stamp of a view a commit moved: its traffic columns no longer
    match the row read, the admin's columns still do."""
    return None if stamp is None else (stamp[0], None)


def with_values(view: AccountView, values: Mapping[str, Any]) -> AccountView:
    """``dataclasses.replace(view, **values)`` without its per-field checks
    in Python, which cost the refresh as much as reading the row, and the
    committer a tenth of its CPU when it moved each granted account (py-spy,
    bench/bench_radius.py). ``values`` are fields of AccountView: nothing
    derived is stored, so nothing else needs computing again."""
    new = object.__new__(AccountView)
    new.__dict__.update(view.__dict__)
    new.__dict__.update(values)
    return new


def _stamp_of(row: Sequence[Any]) -> AccountStamp:
    """A whole row's stamp: its last two columns (billing.account_sql)."""
    return row[-2], row[-1]


@dataclass
class Reservation:
    """What the engine decided for a call being authorized."""

    credit_time: int
    amount: Decimal


class Refusal(enum.StrEnum):
    FUNDS = "funds"
    LOGIN = "login"
    ACCOUNT = "account"
    CALLS = "calls"  # the account's or customer's concurrent-call limit


@dataclass
class ReserveRequest:
    """A call being authorized: what the engine proposes, how it decides
    again from the database's own numbers, and (filled in by the store)
    what was granted."""

    account_pk: int
    customer_pk: int | None  # set when the customer's credit limit applies
    exclusive_login: bool  # debit account under [Fraud_Detection]: one call at a time
    login_until: dt.datetime | None
    proposal: Reservation | None
    decide: Callable[[Decimal], Reservation | None]
    lifetime: int
    customer_of: int | None = None  # the account's customer: its calls are counted
    funds: Decimal | None = None  # what ``proposal`` was decided from (the engine's view)
    granted: Reservation | None = None
    refused: Refusal | None = None


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
    """One accounting record's (or reservation's) effect, applied all-or-nothing."""

    session_key: str
    kind: OpKind
    call_key: str = ""
    leg: str = ""
    account_pk: int | None = None
    billing_model: str = BillingModel.DEBIT
    customer_pk: int | None = None
    node_ip: str = ""
    cli: str = ""
    cld: str = ""
    expires_at: dt.datetime | None = None
    reserved: Decimal = Decimal(0)
    xdrs: list[XDR] = field(default_factory=list)
    quarantine_reason: str = ""
    raw: dict[str, object] = field(default_factory=dict)
    reserve: ReserveRequest | None = None
    logout_pk: int | None = None  # a Stop frees this account's login
    session_id: str = ""  # Acct-Session-Id, for a forced disconnect
    leg_conf_id: str = ""  # h323-conf-id as sent (whole)
    incoming_conf_id: str = ""  # the call's h323-incoming-conf-id (else conf id), whole
    user_name: str = ""
    forget_at: dt.datetime | None = None  # a Stop: its call is remembered as ended until then
    # set by the store: what a Stop (or a call authorized again) gave back
    released: Decimal = Decimal(0)

    # A quarantined record is acknowledged to the gateway (so it stops
    # retransmitting) but neither charged nor dropped: its attributes and the
    # reason are kept in ``quarantined_accounting`` for an admin. The engine
    # quarantines what it cannot rate; the store quarantines a Stop the
    # database refuses to hold, alone, so the rest of its group commit is
    # stored and answered. The op changes in place, so every layer that holds
    # it (the cached store settling balances, the server counting and
    # answering) sees one truth: this record charged nothing.

    def can_quarantine(self) -> bool:
        """Only a Stop carries charges worth keeping; a failing quarantine, Start
        or reservation has nothing better to become."""
        return self.kind == OpKind.STOP and bool(self.session_key)

    def quarantine(self, reason: str) -> None:
        self.raw = {
            "call_key": self.call_key, "leg": self.leg, "node_ip": self.node_ip,
            "cli": self.cli, "cld": self.cld, **self.raw,
            "xdrs": [{"table": x.table, "owner": x.owner_pk, "conf_id": x.conf_id,
                      "duration": x.duration, "amount": str(x.amount), "tariff": x.tariff,
                      "rate_prefix": x.rate_prefix} for x in self.xdrs],
        }
        self.kind = OpKind.QUARANTINE
        self.quarantine_reason = reason
        self.xdrs = []
        self.account_pk = self.customer_pk = None


class BillingStore(Protocol):
    """Every method the engine, the server and its threads use."""

    def find_account(self, account_id: str) -> AccountView | None: ...

    def in_memory(self, account_id: str) -> bool:
        """Whether ``find_account`` answers without the database."""
        ...

    def forget(self, account_id: str) -> None:
        """The next ``find_account`` of this account reads the database."""
        ...

    def available(self, account: AccountView, now: dt.datetime,
                  exclude_call: str = "") -> Decimal: ...

    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool | None]:
        """Apply in one transaction; per op False for a duplicate (or a
        refused reservation, whose ``reserve.refused`` says why), None for a
        record that could not be stored (not to be acknowledged)."""
        ...

    def refresh_accounts(self, holds: bool = True, share: tuple[int, int] = (0, 1)) -> int:
        """Re-read cached accounts; ``share`` (k, n): only those whose pk % n == k."""
        ...

    def prefetch(self, account_ids: Iterable[str]) -> int:
        """Bring these accounts into memory together; how many were read."""
        ...

    def expire_calls(self, now: dt.datetime) -> int: ...

    def holding(self) -> AbstractContextManager[None]:
        """While inside, this thread's ``apply`` keeps its connection from one
        transaction to the next (the committer's threads)."""
        ...

    def release_held(self) -> None:
        """This thread's kept connection goes back to the pool (idle)."""
        ...

    def reload(self) -> None: ...


# MariaDB's "Deadlock found" and "Lock wait timeout exceeded": this
# transaction was rolled back, the database is fine.
LOCK_CONFLICTS = (1213, 1205)
LOCK_TRIES = 4


def lost_a_lock(exc: BaseException) -> bool:
    args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", None), "args", ()))
    return bool(args) and args[0] in LOCK_CONFLICTS


def _translate(exc: SQLAlchemyError) -> DatabaseError:
    if is_unavailable(exc):
        return DatabaseUnavailable(f"billing database unavailable: {exc.__class__.__name__}: "
                                   f"{str(exc.orig) if hasattr(exc, 'orig') else exc}")
    return DatabaseError(str(exc))


@contextmanager
def _mapped() -> Iterator[None]:
    """SQLAlchemy errors become the project's, at one place."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise _translate(exc) from exc


@dataclass
class BatchPlan:
    """What one group commit writes: the pure result of reading the ops."""

    results: list[bool] = field(default_factory=list)
    processed: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    starts: list[dict[str, Any]] = field(default_factory=list)
    reserves: list[AccountingOp] = field(default_factory=list)
    logins: list[AccountingOp] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    logouts: dict[int, set[str]] = field(default_factory=dict)
    interim: dict[str, dt.datetime] = field(default_factory=dict)  # call key -> alive until
    remember: dict[str, dt.datetime] = field(default_factory=dict)  # ended call -> forget at
    acct_xdrs: list[dict[str, Any]] = field(default_factory=list)
    vend_xdrs: list[dict[str, Any]] = field(default_factory=list)
    acct_delta: dict[int, Decimal] = field(default_factory=dict)
    cust_delta: dict[int, Decimal] = field(default_factory=dict)
    vend_delta: dict[int, Decimal] = field(default_factory=dict)
    released: dict[str, Decimal] = field(default_factory=dict)  # call key -> reservation


def _processed_query(keys: Sequence[str]) -> Any:
    """The records of a batch stored before (its duplicates)."""
    return select(m.ProcessedAccounting.session_key).where(
        m.ProcessedAccounting.session_key.in_(keys))


def _add(d: dict[int, Decimal], k: int, v: Decimal) -> None:
    d[k] = d.get(k, Decimal(0)) + v


LOCK_ORDER = ("accounts", "customers", "vendors")


class Moves:
    """Column deltas by table and row id, written as one UPDATE per table in
    ``LOCK_ORDER`` (the order every transaction locks them in). A row only
    to be locked (its children are inserted after) gets a zero balance
    delta: ``balance = balance + 0``."""

    def __init__(self) -> None:
        self._by_table: dict[str, dict[str, dict[int, Any]]] = {t: {} for t in LOCK_ORDER}

    def add(self, table: str, column: str, pk: int, delta: Any) -> None:
        col = self._by_table[table].setdefault(column, {})
        col[pk] = col.get(pk, 0) + delta

    def lock(self, table: str, pk: int | None) -> None:
        if pk is None:
            return
        cols = self._by_table[table]
        if not any(pk in d for d in cols.values()):
            cols.setdefault("balance", {})[pk] = Decimal(0)

    def __bool__(self) -> bool:
        return any(any(cols.values()) for cols in self._by_table.values())

    def queue(self, pipe: Pipeline) -> None:
        for table in LOCK_ORDER:
            cols = self._by_table[table]
            if any(cols.values()):
                pipe.add(*batch_sql.add_by_id(pipe.marker, table, cols))


def plan_batch(ops: Sequence[AccountingOp], seen: set[str], now: dt.datetime) -> BatchPlan:
    """Turn records into rows and balance deltas (no database here).

    ``seen`` holds the session keys already processed: those are duplicates.
    """
    plan = BatchPlan()
    seen = set(seen)
    for op in ops:
        if op.kind == OpKind.NOOP:
            plan.results.append(True)
        elif op.kind == OpKind.RESERVE:
            plan.reserves.append(op)
            plan.results.append(True)  # replaced by the outcome once executed
        elif op.kind == OpKind.LOGIN:
            plan.logins.append(op)
            plan.results.append(True)  # replaced by the outcome once executed
        elif op.kind == OpKind.START:
            plan.starts.append(_call_row(op, now))
            plan.results.append(True)
        elif op.kind == OpKind.INTERIM:
            plan.interim[op.call_key[:128]] = op.expires_at or now
            plan.results.append(True)
        elif op.session_key in seen:
            plan.results.append(False)
        else:
            seen.add(op.session_key)
            plan.results.append(True)
            plan.processed.append({"session_key": op.session_key, "processed_at": now})
            if op.kind == OpKind.QUARANTINE:
                plan.quarantined.append(dict(
                    session_key=op.session_key, reason=op.quarantine_reason[:255],
                    attributes=json.dumps(op.raw, default=str)[:8000], created_at=now))
                continue
            plan.ended.add(op.call_key[:128])
            if op.forget_at is not None and op.call_key:
                plan.remember[op.call_key[:128]] = op.forget_at
            if op.logout_pk is not None:
                plan.logouts.setdefault(op.logout_pk, set()).add(op.call_key[:128])
            _plan_charges(plan, op, now)
    return plan


def _plan_charges(plan: BatchPlan, op: AccountingOp, now: dt.datetime) -> None:
    for x in op.xdrs:
        row = SqlStore.xdr_row(x, now)
        if x.table == "account":
            plan.acct_xdrs.append(row)
            if x.amount:
                acct, cust = signed_charge(op.billing_model, x.amount)
                _add(plan.acct_delta, x.owner_pk, acct)
                if cust and op.customer_pk is not None:
                    _add(plan.cust_delta, op.customer_pk, cust)
        else:
            plan.vend_xdrs.append(row)
            if x.amount:
                _add(plan.vend_delta, x.owner_pk, x.amount)


def _reservation_row(op: AccountingOp, granted: Reservation, now: dt.datetime
                     ) -> dict[str, Any]:
    return dict(zip(grant_sql.CALL_COLUMNS, reservation_values(op, granted, now), strict=True))


def reservation_values(op: AccountingOp, granted: Reservation, now: dt.datetime
                       ) -> tuple[Any, ...]:
    """A reservation's ``active_calls`` row, its values in
    ``grant_sql.CALL_COLUMNS`` order: the busy batch writes 64 of them per
    commit straight into its INSERT; the careful way zips them to names."""
    req = op.reserve
    assert req is not None
    return (op.call_key[:128], op.leg, op.account_pk, req.customer_pk, op.node_ip[:45],
            op.cli[:64], op.cld[:64], granted.amount, now, now,
            now + dt.timedelta(seconds=granted.credit_time + req.lifetime),
            op.session_id[:253], op.user_name[:253], granted.credit_time,
            op.leg_conf_id[:253], op.incoming_conf_id[:253])


def _call_row(op: AccountingOp, now: dt.datetime) -> dict[str, Any]:
    return dict(conf_id=op.call_key[:128], leg=op.leg, account_id=op.account_pk,
                customer_id=None, node_ip=op.node_ip[:45], cli=op.cli[:64], cld=op.cld[:64],
                reserved=op.reserved, started_at=now, updated_at=now,
                expires_at=op.expires_at or now, session_id=op.session_id[:253],
                user_name=op.user_name[:253], credit_time=None,
                leg_conf_id=op.leg_conf_id[:253], incoming_conf_id=op.incoming_conf_id[:253])


class SqlStore:
    """The billing database as the engine sees it (SQLite or MariaDB)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = engine.execution_options(sqlite_read_only=True)
        self._for_update = engine.dialect.name != "sqlite"
        self._ignore_word = "OR IGNORE" if engine.dialect.name == "sqlite" else "IGNORE"
        self._converters: tuple[Converter, ...] | None = None
        self._traffic_converters: tuple[Converter, ...] | None = None
        self._busy: set[int] = set()  # shares (k) most of whose accounts changed last time
        self._settled: dict[int, str] = {}  # pk -> settled text at the last look
        self._held = threading.local()  # a committer thread's kept connection

    # ------------------------------------------------------------- reading
    # Both look-ups are prepared text through the driver, not Core: see
    # billing/account_sql.py for why.
    def in_memory(self, account_id: str) -> bool:
        return False

    def forget(self, account_id: str) -> None:
        return None  # nothing is cached

    def find_account(self, account_id: str) -> AccountView | None:
        found = self.find_account_row(account_id)
        return found[0] if found is not None else None

    def find_account_row(self, account_id: str) -> tuple[AccountView, AccountStamp] | None:
        """The account and its stamp (what the cache's refresh compares)."""
        with _mapped(), self.reader.connect() as conn:
            d = conn.dialect
            row = conn.exec_driver_sql(
                account_sql.by_account_id_sql(grant_sql.placeholder(d.paramstyle), d.name),
                (account_id,)).first()
            return (self._view(d, row), _stamp_of(row)) if row is not None else None

    def find_account_rows(self, account_ids: Sequence[str]
                          ) -> list[tuple[AccountView, AccountStamp]]:
        """Many accounts and their stamps by account id, in few queries; the
        unknown ones left out."""
        with _mapped(), self.reader.connect() as conn:
            return list(self._read_whole(conn, account_ids,
                                         account_sql.by_account_ids_sql).values())

    def prefetch(self, account_ids: Iterable[str]) -> int:
        return 0  # nothing is cached

    def find_accounts(self, pks: Sequence[int]) -> list[AccountView]:
        """Many accounts in few queries."""
        with _mapped(), self.reader.connect() as conn:
            return [view for view, _ in self._read_whole(conn, pks).values()]

    def changed_accounts(self, known: Mapping[int, tuple[AccountView, AccountStamp | None]],
                         holds: bool = True, share: tuple[int, int] = (0, 1)
                         ) -> tuple[dict[int, tuple[AccountView, AccountStamp]], set[int]]:
        """The cache refresh: given the cached accounts by pk with the stamp
        each view was built from, the new view and stamp of each account
        that changed, and the pks no longer there. An account that did not
        change costs one text; one that traffic moved, its traffic columns
        converted; only an admin's change reads it whole. ``known`` holds
        the accounts of ``share`` (k, n) of the cache: pk % n == k."""
        if not holds:
            return self._settled_changes(known, share)
        texts = {pk: old[1] for pk, (_, old) in known.items()
                 if old is not None and old[1] is not None}
        # Moved by this engine's own commits: their traffic is read anyway.
        moved = [pk for pk in known if pk not in texts]
        seen: set[int] = set()
        with _mapped(), self.reader.connect() as conn:
            d = conn.dialect
            ph = grant_sql.placeholder(d.paramstyle)
            if share[0] in self._busy:  # most changed last time (other engines'): no texts
                moved += texts
                texts = {}
            for part in account_sql.chunks(list(texts)):
                for pk, text in conn.exec_driver_sql(account_sql.texts_sql(ph, len(part), d.name),
                                                     part):
                    seen.add(pk)
                    if text != texts[pk]:
                        moved.append(pk)
            changed: dict[int, tuple[AccountView, AccountStamp]] = {}
            whole: list[int] = []
            procs = self._traffic_converters or self._converters_for(d)[1]
            n = len(account_sql.TRAFFIC)
            for part in account_sql.chunks(moved):
                for row in conn.exec_driver_sql(account_sql.traffic_sql(ph, len(part), d.name),
                                                part):
                    pk, stamp = row[0], (row[n + 1], row[n + 2])
                    seen.add(pk)
                    view, old = known[pk]
                    if old is not None and old[1] == stamp[1]:
                        continue  # read in a busy round, did not change
                    if old is not None and old[0] == stamp[0]:  # the admin's columns as read
                        changed[pk] = (with_values(view, account_sql.convert_traffic(
                            row[1:n + 1], procs)), stamp)
                    else:
                        whole.append(pk)
            # each view is read with its stamp in the same row: never labelled
            # with the text of another moment
            changed.update(self._read_whole(conn, whole))
        # Texts first pays when few accounts move between two refreshes; when
        # most do, reading the traffic of all at once is cheaper.
        if len(changed) > len(known) // 2:
            self._busy.add(share[0])
        else:
            self._busy.discard(share[0])
        return changed, set(known) - seen

    def _settled_changes(self, known: Mapping[int, tuple[AccountView, AccountStamp | None]],
                         share: tuple[int, int] = (0, 1)
                         ) -> tuple[dict[int, tuple[AccountView, AccountStamp]], set[int]]:
        """A refresh between two that read the holds: only the accounts whose
        settled text (``account_sql.SETTLED``: an admin's change, a charge)
        moved since the last look are read again, whole; the holds of the
        others wait for the next full round."""
        seen: set[int] = set()
        moved: list[int] = []
        with _mapped(), self.reader.connect() as conn:
            d = conn.dialect
            ph = grant_sql.placeholder(d.paramstyle)
            for part in account_sql.chunks(list(known)):
                for pk, text in conn.exec_driver_sql(
                        account_sql.settled_texts_sql(ph, len(part), d.name), part):
                    seen.add(pk)
                    if self._settled.get(pk) != text:
                        moved.append(pk)
                        self._settled[pk] = text
            changed = self._read_whole(conn, moved)
        k, n = share
        for pk in [pk for pk in self._settled if pk % n == k and pk not in seen]:
            del self._settled[pk]  # gone, or no longer cached: of this share only
        return changed, set(known) - seen

    def _read_whole(self, conn: Connection, keys: Sequence[Any],
                    sql: Callable[[str, int, str], str] = account_sql.by_pks_sql
                    ) -> dict[int, tuple[AccountView, AccountStamp]]:
        """Accounts whole with their stamps, by pk (or by account id with
        ``account_sql.by_account_ids_sql``), in chunks; by pk."""
        out: dict[int, tuple[AccountView, AccountStamp]] = {}
        d = conn.dialect
        ph = grant_sql.placeholder(d.paramstyle)
        for part in account_sql.chunks(list(keys)):
            for row in conn.exec_driver_sql(sql(ph, len(part), d.name), part):
                out[row[0]] = (self._view(d, row), _stamp_of(row))
        return out

    def _converters_for(self, dialect: Any
                        ) -> tuple[tuple[Converter, ...], tuple[Converter, ...]]:
        if self._converters is None or self._traffic_converters is None:
            self._converters = account_sql.converters(dialect)
            self._traffic_converters = account_sql.traffic_converters(self._converters)
        return self._converters, self._traffic_converters

    def _view(self, dialect: Any, row: Sequence[Any]) -> AccountView:
        procs = self._converters or self._converters_for(dialect)[0]
        return AccountView(**account_sql.convert(row, procs))

    def available(self, account: AccountView, now: dt.datetime,
                  exclude_call: str = "") -> Decimal:
        # The view carries the running sums: no summing of calls in progress.
        return account.funds_left

    def refresh_accounts(self, holds: bool = True, share: tuple[int, int] = (0, 1)) -> int:
        return 0  # nothing is cached

    def reload(self) -> None:
        return None

    # ----------------------------------------------------------- accounting
    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool | None]:
        """Apply records and reservations in one transaction (group commit).

        Returns, per op, False when a record had been applied before (a
        duplicate: nothing charged again) or a reservation was refused. If
        the batch fails for a reason other than the database being gone
        (another engine committed the same Stop a moment earlier, one bad
        record), each op is retried alone so that one cannot hold back the
        others; a Stop that still cannot be stored is quarantined in its
        place (the op is turned into a quarantine, see ``AccountingOp.quarantine``),
        and a record that cannot even be quarantined gets None: not stored,
        not to be acknowledged.
        """
        if not ops:
            return []
        try:
            return list(self._committed(ops, now))
        except SQLAlchemyError as exc:
            err = _translate(exc)
            if isinstance(err, DatabaseUnavailable) and not lost_a_lock(exc):
                raise err from exc
            log.warning("group commit of %d records failed (%s); applying one by one",
                        len(ops), err)
        results: list[bool | None] = []
        for op in ops:
            results.append(self._apply_alone(op, now))
        return results

    def _committed(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool]:
        """One transaction for ``ops``. One that lost a lock conflict with
        another engine's (InnoDB's deadlock victim, or a lock wait timeout)
        was rolled back whole: it is run again, a few times, before it
        counts as failed."""
        for attempt in range(1, LOCK_TRIES + 1):
            for op in ops:
                op.released = Decimal(0)
                if op.reserve is not None:
                    op.reserve.granted = op.reserve.refused = None
            try:
                with self._transaction() as conn:
                    return self._apply_batch(conn, ops, now)
            except SQLAlchemyError as exc:
                if attempt == LOCK_TRIES or not lost_a_lock(exc):
                    raise
                log.info("group commit of %d records lost a lock conflict with another "
                         "engine (try %d of %d): running it again", len(ops), attempt,
                         LOCK_TRIES)
        raise AssertionError("unreachable")

    @contextmanager
    def holding(self) -> Iterator[None]:
        self._held.on = True
        try:
            yield
        finally:
            self.release_held()
            self._held.on = False

    def release_held(self) -> None:
        conn: Connection | None = getattr(self._held, "conn", None)
        self._held.conn = None
        if conn is not None:
            with suppress(Exception):  # a dead connection is discarded
                conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction, committed when the block ends. A thread inside
        ``holding`` keeps its connection for the next one: a batch taken
        from the pool cost its checkout and its checkin, whose reset is a
        ROLLBACK round trip, together as much CPU as the COMMIT (py-spy of
        bench/bench_engine_cpu.py at small batches, the batches of two
        processes). The committer gives it back after half a second idle,
        so an idle engine keeps no connection open; one that fails in a
        batch is given back at once (a dead one is discarded) and the next
        batch takes a fresh one."""
        if not getattr(self._held, "on", False):
            with self.engine.begin() as own:
                yield own
            return
        kept: Connection | None = getattr(self._held, "conn", None)
        if kept is None:
            kept = self._held.conn = self.engine.connect()
        try:
            with kept.begin():
                yield kept
        except BaseException:
            self.release_held()
            raise

    def _apply_alone(self, op: AccountingOp, now: dt.datetime) -> bool | None:
        for attempt in range(2):
            try:
                return self._committed([op], now)[0]
            except SQLAlchemyError as exc:
                if lost_a_lock(exc):
                    log.error("accounting record %s lost lock conflicts %d times: not stored "
                              "now, not acknowledged (the gateway sends it again)",
                              op.session_key, LOCK_TRIES)
                    return None
                err = _translate(exc)
                if isinstance(err, DatabaseUnavailable):
                    raise err from exc
                if attempt or not op.can_quarantine():
                    log.error("accounting record %s cannot be stored: %s; not acknowledged",
                              op.session_key, err)
                    return None
                log.error("accounting record %s cannot be stored (%s): quarantined",
                          op.session_key, err)
                op.quarantine(f"cannot be stored: {err}")
        return None

    def _apply_batch(self, conn: Connection, ops: Sequence[AccountingOp],
                     now: dt.datetime) -> list[bool]:
        """Few statements for many records: one look-up of the records seen
        before, multi-row inserts, one balance update per table; and per
        reservation one conditional UPDATE, whatever the calls in progress."""
        keyed = {op.session_key for op in ops if op.kind in (OpKind.STOP, OpKind.QUARANTINE)}
        seen: set[str] = set()
        ending: list[Sequence[Any]] = []
        if keyed:
            # The records seen before and the calls the Stops may end, read
            # (locked) in one round trip: which Stops are duplicates is known
            # only after it, so the calls of all of them are read and only
            # those of the fresh ones released (a duplicate's call is gone
            # already, or is a later authorization of it, which stays).
            look = Pipeline(conn)
            found = look.add_prepared(("processed", len(keyed)), _processed_query, sorted(keyed))
            stops = sorted({op.call_key[:128] for op in ops if op.kind == OpKind.STOP})
            calls_at = None
            if stops:
                calls_at = look.add_prepared(
                    ("release", len(stops), self._for_update),
                    lambda keys: self._release_query(m.ActiveCall.conf_id.in_(keys)),
                    stops)
            out = look.run()
            seen = {row[0] for row in out[found].rows}
            if calls_at is not None:
                ending = list(out[calls_at].rows)
        plan = plan_batch(ops, seen, now)
        # The writes go to the database together (billing/sql_pipeline.py):
        # a batch of Stops costs three round trips whatever its size.
        pipe = Pipeline(conn)
        self._execute(conn, pipe, plan, now, ending)
        for op, fresh in zip(ops, plan.results, strict=True):
            if fresh and op.kind == OpKind.STOP:
                op.released = plan.released.pop(op.call_key[:128], Decimal(0))
        if plan.logins:
            held = self._hold_logins(pipe, plan.logins, now)
            plan.results = [held[id(op)] if op.kind == OpKind.LOGIN else r
                            for op, r in zip(ops, plan.results, strict=True)]
        if plan.reserves:
            outcome = iter(self._reserve_all(conn, pipe, plan.reserves, plan.ended, now))
            plan.results = [next(outcome) if op.kind == OpKind.RESERVE else r
                            for op, r in zip(ops, plan.results, strict=True)]
        pipe.run()
        # Every lock this batch takes is held: the next batch may run its
        # statements while this COMMIT is flushed (billing/commit_turn.py).
        commit_turn.statements_done()
        return plan.results

    def _hold_logins(self, pipe: Pipeline, ops: list[AccountingOp], now: dt.datetime
                     ) -> dict[int, bool]:
        """Authentications of debit accounts: each takes the account's login
        hold when it is free, its own, or over (one conditional UPDATE, the
        same condition as a reservation's)."""
        a = m.Account
        index = []
        for op in ops:
            req = op.reserve
            assert req is not None and op.account_pk is not None
            key = op.call_key[:128]
            index.append(pipe.add_core(update(a).where(
                a.id == op.account_pk,
                or_(a.login_call == LOGIN_FREE, a.login_call == key, a.login_until < now))
                .values(login_call=key, login_until=req.login_until)))
        out = pipe.run()
        held: dict[int, bool] = {}
        for op, i in zip(ops, index, strict=True):
            req = op.reserve
            assert req is not None
            ok = out[i].rowcount == 1
            req.granted, req.refused = (req.proposal, None) if ok else (None, Refusal.LOGIN)
            held[id(op)] = ok
        return held

    def _execute(self, conn: Connection, pipe: Pipeline, plan: BatchPlan,
                 now: dt.datetime, ending: Sequence[Sequence[Any]]) -> None:
        """Queue the batch's records on ``pipe``; ``ending`` are the calls
        its Stops may end, read and locked by ``_release_query`` (what is
        given back depends on them).

        The locks are taken in one order, the order of every transaction of
        every engine: calls in progress, then accounts, customers and
        vendors, each in one UPDATE (ids ascending), and only then the rows
        that refer to them. A row inserted with a foreign key takes a shared
        lock on its parent; had the xDRs gone in before the balances, two
        engines' Stop batches each held a shared lock on the one vendor the
        other was waiting to update, and InnoDB killed one (seen with two
        processes in bench/bench_radius.py). So every parent row a batch
        inserts for is locked by those UPDATEs first, with nothing added
        where it has nothing to add."""
        if plan.processed:
            pipe.add_rows(m.ProcessedAccounting.__tablename__, plan.processed)
        if plan.quarantined:
            pipe.add_rows(m.QuarantinedAccounting.__tablename__, plan.quarantined)
        moves = Moves()
        if plan.ended:
            rows = [r for r in ending if r[4] in plan.ended]
            for _pk, amount, key in self._give_back(pipe, rows, moves):
                plan.released[key] = plan.released.get(key, Decimal(0)) + amount
        if plan.interim:
            calls.keep_alive(conn, plan.interim, now)
        starts = calls.admit_starts(conn, plan.starts, plan.ended, now) if plan.starts else []
        for k, v in plan.acct_delta.items():
            moves.add("accounts", "balance", k, v)
        for k, v in plan.cust_delta.items():
            moves.add("customers", "balance", k, v)
        for k, v in plan.vend_delta.items():
            moves.add("vendors", "balance", k, v)
        for x in plan.acct_xdrs:
            moves.lock("accounts", x["account_id"])
        for x in plan.vend_xdrs:
            moves.lock("vendors", x["vendor_id"])
        for r in starts:
            moves.lock("accounts", r["account_id"])
            moves.lock("customers", r["customer_id"])
        for k in plan.logouts:
            moves.lock("accounts", k)
        if moves:
            # A batch of records and authorizations: the accounts and
            # customers its grants and login holds will update are locked
            # here too, in the same order, not in a second round after it.
            for op in (*plan.logins, *plan.reserves):
                moves.lock("accounts", op.account_pk)
                if op.reserve is not None:
                    moves.lock("customers", op.reserve.customer_of)
                    moves.lock("customers", op.reserve.customer_pk)
        # One round trip per statement, not per account: see batch_sql.
        moves.queue(pipe)
        if plan.logouts:
            pipe.add(*batch_sql.logout(pipe.marker, plan.logouts))
        if plan.remember:
            pipe.add_rows(m.EndedCall.__tablename__, [
                dict(conf_id=k, ended_at=now, forget_at=t) for k, t in plan.remember.items()],
                self._ignore_word)
        if starts:
            pipe.add_rows(m.ActiveCall.__tablename__, starts, self._ignore_word)
        if plan.acct_xdrs:
            pipe.add_rows(m.AccountXDR.__tablename__, plan.acct_xdrs)
        if plan.vend_xdrs:
            pipe.add_rows(m.VendorXDR.__tablename__, plan.vend_xdrs)

    # ----------------------------------------------------------- reserving
    def _release_query(self, where: Any) -> Any:
        q = (select(m.ActiveCall.id, m.ActiveCall.account_id, m.ActiveCall.customer_id,
                    m.ActiveCall.reserved, m.ActiveCall.conf_id, m.ActiveCall.leg,
                    m.Account.customer_id.label("owner"))
             .outerjoin(m.Account, m.Account.id == m.ActiveCall.account_id).where(where))
        if self._for_update:
            q = q.with_for_update(of=m.ActiveCall.__table__)
        return q

    def _release(self, conn: Connection, where: Any
                 ) -> list[tuple[int | None, Decimal, str]]:
        """Delete calls in progress and give their reservations back: read
        them locked, delete exactly those, subtract exactly their sums, so a
        reservation is released once whichever engine sees its Stop."""
        pipe = Pipeline(conn)
        moves = Moves()
        released = self._give_back(pipe, conn.execute(self._release_query(where)).all(), moves)
        moves.queue(pipe)
        pipe.run()
        return released

    @staticmethod
    def _give_back(pipe: Pipeline, rows: Sequence[Sequence[Any]], moves: Moves
                   ) -> list[tuple[int | None, Decimal, str]]:
        """The writes of a release for the rows ``_release_query`` read and
        locked: the delete queued on ``pipe``, what the accounts and
        customers get back added to ``moves`` (the caller queues them)."""
        if not rows:
            return []
        pipe.add(batch_sql.delete_calls_sql(pipe.marker, len(rows)), [r[0] for r in rows])
        for _id, account_id, customer_id, reserved, _key, leg, owner in rows:
            if reserved and account_id is not None:
                moves.add("accounts", "reserved", account_id, -Decimal(reserved))
            if reserved and customer_id is not None:
                moves.add("customers", "reserved", customer_id, -Decimal(reserved))
            if leg == "authorize" and account_id is not None:
                moves.add("accounts", "calls", account_id, -1)
                if owner is not None:
                    moves.add("customers", "calls", owner, -1)
        return [(r[1], Decimal(r[3]), r[4]) for r in rows]

    def _reserve_all(self, conn: Connection, pipe: Pipeline, ops: list[AccountingOp],
                     ended: set[str], now: dt.datetime) -> list[bool]:
        together = self._grant_together(conn, pipe, ops, ended, now)
        if together is None:
            pipe.run()  # the batch's records first, as they were queued
            # A call authorized again gives its old reservation back first.
            given_back = self._release(conn, (m.ActiveCall.leg == "authorize") &
                                       m.ActiveCall.conf_id.in_(
                                           {op.call_key[:128] for op in ops}))
            again = {r[0] for r in given_back if r[0]}
            # Then the batch is tried together once more, its proposals
            # decided again with that money: a gateway failing over sends
            # its calls' authorizations again, and one by one (a round trip
            # each) a storm of them at 1,000/s outran the committer.
            together = (self._grant_together(conn, pipe, ops, ended, now)
                        if self._propose_again(ops, given_back) else None) or set()
        else:
            again = set()
        rows: list[dict[str, Any]] = []
        done: dict[str, Reservation | None] = {}
        out: list[bool] = []
        for op in ops:
            req = op.reserve
            assert req is not None
            key = op.call_key[:128]
            if key in done:  # the same call twice in one batch: one reservation
                req.granted = done[key]
                req.refused = None if req.granted else Refusal.FUNDS
            elif key in ended:  # it ended in this same batch: nothing to hold
                req.granted, req.refused = req.proposal, None
            elif id(op) in together:  # granted and its row written together
                req.granted = req.proposal
                done[key] = req.granted
            else:
                fast = req.proposal if req.account_pk not in again else None
                req.granted = self._grant(conn, op, req, fast, now)
                done[key] = req.granted
                if req.granted is not None:
                    rows.append(_reservation_row(op, req.granted, now))
            out.append(req.granted is not None)
        if rows:
            conn.execute(insert(m.ActiveCall), rows)
        return out

    @staticmethod
    def _propose_again(ops: list[AccountingOp],
                       given_back: list[tuple[int | None, Decimal, str]]) -> bool:
        """After the calls authorized again gave their old reservations back:
        each such call's op says what it gave back (``released``, once per
        call: the cache moves by it), and its proposal is decided again from
        the funds it was decided from plus that money (an estimate: the
        database's conditional statements still decide, and what no longer
        fits goes the careful way). False when nothing was given back."""
        back: dict[str, Decimal] = {}
        for account_pk, amount, key in given_back:
            if account_pk is not None:
                back[key] = back.get(key, Decimal(0)) + amount
        told: set[str] = set()
        for op in ops:
            req = op.reserve
            key = op.call_key[:128]
            if req is None or key not in back:
                continue
            if key not in told:
                op.released = back[key]
                told.add(key)
            if req.funds is not None:
                req.proposal = req.decide(req.funds + back[key])
        return bool(back)

    @staticmethod
    def _pick_together(ops: list[AccountingOp], ended: set[str]) -> list[AccountingOp]:
        """The plain proposals of a batch: no exclusive login, one per call,
        not ended in the same batch."""
        picked: list[AccountingOp] = []
        keys: set[str] = set()
        for op in ops:
            req = op.reserve
            key = op.call_key[:128]
            if req is None or req.proposal is None or req.exclusive_login or key in keys or \
                    key in ended or req.proposal.amount < 0:
                continue
            keys.add(key)
            picked.append(op)
        return picked

    def _grant_together(self, conn: Connection, pipe: Pipeline, ops: list[AccountingOp],
                        ended: set[str], now: dt.datetime) -> set[int] | None:
        """The fast path of a batch, in one round trip (billing.sql_pipeline):
        no call of the batch authorized before, every plain proposal granted
        by one conditional statement per table (each account's proposals
        summed), and their ``active_calls`` rows. All of it holds or none
        (a savepoint); then the caller goes the careful way, call by call.

        Returns the ``id()`` of the ops granted and written, or None when
        the batch needs the careful way (a call authorized again, a proposal
        that no longer fits)."""
        picked = self._pick_together(ops, ended)
        if not picked:
            return None
        acct: dict[int, Decimal] = {}
        cust: dict[int, Decimal] = {}
        acct_n: dict[int, int] = {}
        cust_n: dict[int, int] = {}
        for op in picked:
            req = op.reserve
            assert req is not None and req.proposal is not None
            _add(acct, req.account_pk, req.proposal.amount)
            acct_n[req.account_pk] = acct_n.get(req.account_pk, 0) + 1
            customer = req.customer_of if req.customer_of is not None else req.customer_pk
            if customer is not None:
                cust_n[customer] = cust_n.get(customer, 0) + 1
            if req.customer_pk is not None:
                _add(cust, req.customer_pk, req.proposal.amount)
        # Prepared text, not Core: see billing/grant_sql.py for why. Sent
        # with the batch's records queued before (their indexes come first).
        ph = pipe.marker
        keys = sorted({op.call_key[:128] for op in ops})
        again = pipe.add(grant_sql.again_sql(ph, len(keys), self._for_update),
                         ("authorize", *keys))
        pipe.add("SAVEPOINT grant_together")
        # Accounts before customers, in every transaction of every engine:
        # the order a Stop's release locks them in (its read joins the
        # accounts), so two engines' commits wait for each other instead of
        # deadlocking.
        expect: dict[int, int] = {}
        expect[pipe.add(grant_sql.accounts_sql(ph, len(acct)),
                        grant_sql.accounts_params(acct, acct_n, BillingModel.DEBIT.value)
                        )] = len(acct)
        if cust_n:
            expect[pipe.add(grant_sql.customers_sql(ph, len(cust_n), len(cust)),
                            grant_sql.customers_params(cust, cust_n))] = len(cust_n)
        rows = [reservation_values(op, op.reserve.proposal, now) for op in picked
                if op.reserve is not None and op.reserve.proposal is not None]
        # IGNORE: a row that is somehow there already is seen in the count
        # below and undone with the rest, instead of failing the batch.
        expect[pipe.add(grant_sql.insert_calls_sql(ph, len(rows), self._ignore_word),
                        [v for row in rows for v in row])] = len(rows)
        out = pipe.run()
        if out[again].rows or any(out[i].rowcount != n for i, n in expect.items()):
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT grant_together")
            return None
        return {id(op) for op in picked}

    def _grant(self, conn: Connection, op: AccountingOp, req: ReserveRequest,
               fast: Reservation | None, now: dt.datetime) -> Reservation | None:
        """The engine's proposal in one conditional statement per row; when it
        does not fit (another engine spent first, a charge behind our back),
        decide again from the locked rows."""
        if fast is not None and fast.amount >= 0 and self._conditional(conn, op, req,
                                                                      fast.amount, now):
            return fast
        acct_q = select(m.Account.billing_model, m.Account.balance, m.Account.credit_limit,
                        m.Account.reserved, m.Account.login_call, m.Account.login_until,
                        m.Account.calls, m.Account.max_calls).where(
                            m.Account.id == req.account_pk)
        if self._for_update:
            acct_q = acct_q.with_for_update()
        a = conn.execute(acct_q).first()
        if a is None:
            req.refused = Refusal.ACCOUNT
            return None
        if req.exclusive_login and a.login_call not in (LOGIN_FREE, op.call_key[:128]) and \
                (a.login_until is None or a.login_until >= now):
            req.refused = Refusal.LOGIN
            return None
        if a.max_calls is not None and a.calls >= a.max_calls:
            req.refused = Refusal.CALLS
            return None
        funds = (a.balance if a.billing_model == BillingModel.DEBIT
                 else a.credit_limit - a.balance) - a.reserved
        customer = req.customer_of if req.customer_of is not None else req.customer_pk
        if customer is not None:
            cust_q = select(m.Customer.balance, m.Customer.credit_limit, m.Customer.reserved,
                            m.Customer.calls, m.Customer.max_calls).where(
                                m.Customer.id == customer)
            if self._for_update:
                cust_q = cust_q.with_for_update()
            c = conn.execute(cust_q).first()
            if c is not None and c.max_calls is not None and c.calls >= c.max_calls:
                req.refused = Refusal.CALLS
                return None
            if c is not None and c.credit_limit is not None and req.customer_pk is not None:
                funds = min(funds, c.credit_limit - c.balance - c.reserved)
        decision = req.decide(Decimal(funds))
        if decision is None:
            req.refused = Refusal.FUNDS
            return None
        if not self._conditional(conn, op, req, decision.amount, now):
            req.refused = Refusal.FUNDS  # cannot happen under the locks; refuse if it does
            return None
        return decision

    def _conditional(self, conn: Connection, op: AccountingOp, req: ReserveRequest,
                     amount: Decimal, now: dt.datetime) -> bool:
        """The reservation contract's statements: granted when they match.
        The account first, then its customer (the lock order of every
        transaction: see ``_grant_together``). When the customer refuses,
        the account is put back as it was by a savepoint, not by a
        compensating update: the login hold may have been this call's
        already (its authentication took it in an earlier transaction),
        and it must stay so."""
        a = m.Account
        funds = case((a.billing_model == BillingModel.DEBIT.value, a.balance),
                     else_=a.credit_limit - a.balance)
        cond = [a.id == req.account_pk, funds - a.reserved >= amount,
                or_(a.max_calls.is_(None), a.calls < a.max_calls)]
        values: dict[str, Any] = {"reserved": a.reserved + amount, "calls": a.calls + 1}
        if req.exclusive_login:
            key = op.call_key[:128]
            cond.append(or_(a.login_call == LOGIN_FREE, a.login_call == key,
                            a.login_until < now))
            values.update(login_call=key, login_until=req.login_until)
        c = m.Customer
        customer = req.customer_of if req.customer_of is not None else req.customer_pk
        if customer is None:
            return bool(conn.execute(update(a).where(*cond).values(**values)).rowcount)
        conn.exec_driver_sql("SAVEPOINT grant_one")
        if not conn.execute(update(a).where(*cond).values(**values)).rowcount:
            conn.exec_driver_sql("RELEASE SAVEPOINT grant_one")
            return False
        c_cond = [c.id == customer, or_(c.max_calls.is_(None), c.calls < c.max_calls)]
        c_values: dict[str, Any] = {"calls": c.calls + 1}
        if req.customer_pk is not None:
            c_cond.append(c.credit_limit - c.balance - c.reserved >= amount)
            c_values["reserved"] = c.reserved + amount
        if conn.execute(update(c).where(*c_cond).values(**c_values)).rowcount:
            conn.exec_driver_sql("RELEASE SAVEPOINT grant_one")
            return True
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT grant_one")
        conn.exec_driver_sql("RELEASE SAVEPOINT grant_one")
        return False

    # ---------------------------------------------------------- funds locks
    def lock_funds(self, key: str, account_pk: int, amount: Decimal, now: dt.datetime,
                   expires_at: dt.datetime | None = None) -> None:
        """A reservation that is not a call (failback's funds lock): held
        whatever the funds, because it records money already spent."""
        with _mapped(), self.engine.begin() as conn:
            acct = conn.execute(select(m.Account.customer_id, m.Account.billing_model,
                                       m.Customer.credit_limit)
                                .join(m.Customer, m.Customer.id == m.Account.customer_id)
                                .where(m.Account.id == account_pk)).one()
            cust = acct.customer_id if acct.billing_model == BillingModel.CREDIT and \
                acct.credit_limit is not None else None
            self._release(conn, (m.ActiveCall.conf_id == key[:128]) &
                          (m.ActiveCall.leg == "funds_lock"))
            conn.execute(insert(m.ActiveCall).values(
                conf_id=key[:128], leg="funds_lock", account_id=account_pk, customer_id=cust,
                reserved=amount, started_at=now, updated_at=now,
                expires_at=expires_at or dt.datetime(9999, 1, 1)))
            conn.execute(update(m.Account).where(m.Account.id == account_pk).values(
                reserved=m.Account.reserved + amount))
            if cust is not None:
                conn.execute(update(m.Customer).where(m.Customer.id == cust).values(
                    reserved=m.Customer.reserved + amount))

    def release_funds(self, key: str) -> Decimal:
        """Give a funds lock back; what it held (0 when there was none)."""
        with _mapped(), self.engine.begin() as conn:
            rows = self._release(conn, (m.ActiveCall.conf_id == key[:128]) &
                                 (m.ActiveCall.leg == "funds_lock"))
        return sum((r[1] for r in rows), Decimal(0))

    # ---------------------------------------------------------- chores
    @staticmethod
    def xdr_row(x: XDR, now: dt.datetime) -> dict[str, Any]:
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

    # Set by the wiring (billing/app.py): the running engine's sweeps never
    # move faster than the elapsed time (billing/db_clock.py).
    sweep_cutoff: Callable[[dt.datetime], dt.datetime] | None = None

    def expire_calls(self, now: dt.datetime) -> int:
        """Forget calls whose Stop never came (their lifetime ran out) and
        give their reservations back. ``now`` is billing time; with a
        ``sweep_cutoff`` a jump of it forward forgets no call early."""
        if self.sweep_cutoff is not None:
            now = self.sweep_cutoff(now)
        with _mapped(), self.engine.begin() as conn:
            gone = self._release(conn, m.ActiveCall.expires_at < now)
            conn.execute(delete(m.EndedCall).where(m.EndedCall.forget_at < now))
        for key in sorted({g[2] for g in gone}):
            log.warning("call %s forgotten: no Stop within its lifetime ([Call_Cleanup]); "
                        "its reservation and call slot given back", key)
        return len(gone)


def reserved_sums_agree(conn: Connection) -> Iterable[tuple[int, Decimal, Decimal]]:
    """Accounts whose running sum differs from their calls (for checks and tests)."""
    from sqlalchemy import func

    sums = (select(m.ActiveCall.account_id, func.sum(m.ActiveCall.reserved).label("s"))
            .group_by(m.ActiveCall.account_id).subquery())
    q = (select(m.Account.id, m.Account.reserved, func.coalesce(sums.c.s, 0))
         .outerjoin(sums, sums.c.account_id == m.Account.id)
         # SQLite keeps NUMERIC in floating point: a difference below the
         # fifth decimal is its rounding, not money
         .where(func.abs(m.Account.reserved - func.coalesce(sums.c.s, 0)) > 0.000001))
    return [(r[0], Decimal(r[1]), Decimal(r[2])) for r in conn.execute(q)]
