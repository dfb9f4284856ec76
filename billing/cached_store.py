"""The store the running engine uses: the database behind an in-memory
account cache and reservation ledger (see ``billing.ledger`` for why this
is safe with one engine process per database).

Authorizations of cached accounts need no database round trip; their
reservations are written behind with the next group commit. Charges are
applied to the database first and to the cache only after the commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from billing.db import DatabaseError
from billing.ledger import AccountCache, Ledger
from billing.store import AccountingOp, AccountView, Reservation, SqlStore

log = logging.getLogger(__name__)


class CachedStore:
    def __init__(self, db: SqlStore, account_ttl: float = 10.0) -> None:
        self.db = db
        self.accounts = AccountCache(account_ttl)
        self.ledger = Ledger()
        self._write_behind: list[AccountingOp] = []
        self._write_lock = threading.Lock()  # the packet loop adds, the committer takes
        self._last_write = time.monotonic()

    # the engine's view -------------------------------------------------------
    def find_account(self, account_id: str) -> AccountView | None:
        acct = self.accounts.get(account_id)
        if acct is None:
            acct = self.db.find_account(account_id)
            if acct is not None:
                self.accounts.put(acct)
        return acct

    def available(self, account: AccountView, now: dt.datetime,
                  exclude_call: str = "") -> Decimal:
        return account.own_funds - self.ledger.reserved(account.pk, exclude_call)

    def reserve(self, account: AccountView, call_key: str, node_ip: str, cli: str, cld: str,
                now: dt.datetime, lifetime: int,
                decide: Callable[[Decimal], Reservation | None]) -> Reservation | None:
        decision = decide(self.available(account, now, exclude_call=call_key))
        if decision is None:
            return None
        ttl = decision.credit_time + lifetime
        self.ledger.hold(account.pk, call_key, decision.amount, ttl)
        op = AccountingOp(
            session_key="", kind="reserve", call_key=call_key, leg="authorize",
            account_pk=account.pk, node_ip=node_ip, cli=cli, cld=cld,
            reserved=decision.amount, expires_at=now + dt.timedelta(seconds=ttl))
        with self._write_lock:
            self._write_behind.append(op)
        return decision

    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool]:
        with self._write_lock:
            pending, self._write_behind = self._write_behind, []
        self._last_write = time.monotonic()
        try:
            results = self.db.apply([*pending, *ops], now)
        except DatabaseError:
            # Reservations stay in memory; they are retried with the next batch.
            with self._write_lock:
                self._write_behind = pending + self._write_behind
            raise
        results = results[len(pending):]
        for op, fresh in zip(ops, results, strict=True):
            if op.kind != "stop":
                continue
            if fresh:
                # Charge the cached balance before the reservation goes: in
                # between, funds read low (safe), never high.
                for x in op.xdrs:
                    if x.table == "account" and x.amount:
                        sign = -1 if op.billing_model == "debit" else 1
                        cust = x.amount if op.billing_model == "credit" else Decimal(0)
                        self.accounts.charged(x.owner_pk, sign * x.amount, cust)
            self.ledger.release(op.call_key)
        return results

    # the server's housekeeping -----------------------------------------------
    def flush(self, now: dt.datetime, force: bool = True) -> None:
        """Write reservations behind when no accounting came to carry them:
        at once when ``force`` (the server is idle), else when enough have
        gathered or the oldest has waited half a second."""
        with self._write_lock:
            if not self._write_behind:
                return
            waiting = len(self._write_behind)
        due = force or waiting >= 256 or \
            time.monotonic() - self._last_write > 0.5
        if due:
            try:
                self.apply([], now)
            except DatabaseError as exc:
                log.warning("reservations not written yet (kept in memory): %s", exc)

    def restore(self, now: dt.datetime) -> int:
        """Read the reservations of calls in progress back after a restart."""
        rows = self.db.load_reservations(now)
        for account_pk, call_key, amount, seconds in rows:
            self.ledger.hold(account_pk, call_key, amount, seconds)
        return len(rows)

    def expire_calls(self, now: dt.datetime) -> int:
        return self.db.expire_calls(now)

    def refresh_accounts(self) -> int:
        """Re-read every cached account in a few queries, off the request path,
        so that accounts in use never expire in the middle of traffic."""
        pks = self.accounts.cached_pks()
        if not pks:
            return 0
        fresh = self.db.find_accounts(pks)
        self.accounts.refresh(fresh, set(pks) - {a.pk for a in fresh})
        return len(fresh)

    def reload(self) -> None:
        """SIGHUP: forget cached accounts so admin changes show at once."""
        self.accounts.clear()

