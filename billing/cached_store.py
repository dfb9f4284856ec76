"""The store the running engine uses: the database behind an in-memory
account cache (``billing.account_cache``).

Look-ups of cached accounts need no database round trip, so the packet loop
can decide them at once; the cache only proposes credit times, the database
grants them (``SqlStore.apply``). After every commit the cached accounts are
moved as the database moved them, and every half second the accounts in
use are re-read (only the changed ones rebuilt), so proposals start from
the database's numbers, including what other engines reserved.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal

from billing.account_cache import AccountCache
from billing.store import AccountingOp, AccountView, OpKind, SqlStore, signed_charge

log = logging.getLogger(__name__)


class CachedStore:
    def __init__(self, db: SqlStore, account_ttl: float = 10.0,
                 cache: AccountCache | None = None) -> None:
        self.db = db
        self.accounts = cache or AccountCache(account_ttl)

    # the engine's view -------------------------------------------------------
    def in_memory(self, account_id: str) -> bool:
        return self.accounts.get(account_id) is not None

    def forget(self, account_id: str) -> None:
        acct = self.accounts.get(account_id)
        if acct is not None:
            self.accounts.forget(acct.pk)

    def find_account(self, account_id: str) -> AccountView | None:
        acct = self.accounts.get(account_id)
        if acct is None:
            found = self.db.find_account_row(account_id)
            if found is None:
                return None
            acct, stamp = found
            self.accounts.put(acct, stamp)
        return acct

    def prefetch(self, account_ids: Iterable[str]) -> int:
        """Read the accounts not in memory in few queries, for a burst of
        requests whose accounts are not (a process's cold start, accounts
        another process served last): one look-up each was a round trip
        each, in four look-up threads. How many were read; fewer than two
        missing, nothing (the request's own look-up reads it)."""
        missing = sorted({a for a in account_ids if a and self.accounts.get(a) is None})
        if len(missing) < 2:
            return 0
        rows = self.db.find_account_rows(missing)
        for acct, stamp in rows:
            self.accounts.put(acct, stamp)
        return len(rows)

    def available(self, account: AccountView, now: dt.datetime,
                  exclude_call: str = "") -> Decimal:
        return account.funds_left

    def holding(self) -> AbstractContextManager[None]:
        return self.db.holding()

    def release_held(self) -> None:
        self.db.release_held()

    def apply(self, ops: Sequence[AccountingOp], now: dt.datetime) -> list[bool | None]:
        """Commit, then move the cached accounts as the database moved them
        (no re-read: the periodic refresh brings what other engines did)."""
        results = self.db.apply(ops, now)
        for op, fresh in zip(ops, results, strict=True):
            if op.kind == OpKind.RESERVE and op.released and op.reserve:
                # authorized again: its old reservation was given back
                # (committed, whether the new one was granted or not)
                self.accounts.adjust(op.reserve.account_pk, reserved=-op.released,
                                     customer_reserved=-op.released
                                     if op.reserve.customer_pk is not None else Decimal(0),
                                     calls=-1)
            if op.kind == OpKind.RESERVE and fresh and op.reserve and op.reserve.granted:
                self.accounts.adjust(op.reserve.account_pk, reserved=op.reserve.granted.amount,
                                     customer_reserved=op.reserve.granted.amount
                                     if op.reserve.customer_pk is not None else Decimal(0),
                                     calls=1)
                if op.reserve.exclusive_login:
                    self.accounts.login(op.reserve.account_pk, op.call_key[:128],
                                        op.reserve.login_until)
            elif op.kind == OpKind.LOGIN and fresh and op.reserve and op.reserve.granted:
                self.accounts.login(op.reserve.account_pk, op.call_key[:128],
                                    op.reserve.login_until)
            elif op.kind == OpKind.STOP and fresh:
                if op.logout_pk is not None:
                    self.accounts.logout(op.logout_pk, op.call_key[:128])
                for x in op.xdrs:
                    if x.table == "account" and x.amount:
                        acct, cust = signed_charge(op.billing_model, x.amount)
                        self.accounts.adjust(x.owner_pk, balance=acct, customer_balance=cust)
                if op.released and op.account_pk is not None:
                    self.accounts.adjust(op.account_pk, reserved=-op.released,
                                         customer_reserved=-op.released
                                         if op.customer_pk is not None else Decimal(0),
                                         calls=-1)
        return results

    # the server's housekeeping -----------------------------------------------
    def expire_calls(self, now: dt.datetime) -> int:
        return self.db.expire_calls(now)

    def refresh_accounts(self, holds: bool = True, share: tuple[int, int] = (0, 1)) -> int:
        """Re-read the accounts in use in a few queries, off the request
        path, so they show admin changes and other engines' reservations;
        only those whose stamp changed are read whole. Returns how many were.

        ``holds=False``: not the reservations, calls and logins of accounts
        nothing else changed (see ``SqlStore.changed_accounts``).
        ``share`` (k, n): only the accounts whose pk % n == k (the server
        spreads one round over n slices)."""
        known = self.accounts.to_refresh(share)
        if not known:
            return 0
        changed, gone = self.db.changed_accounts(known, holds, share)
        self.accounts.refresh(changed, gone)
        return len(changed)

    def reload(self) -> None:
        """SIGHUP: forget cached accounts so admin changes show at once."""
        self.accounts.clear()
