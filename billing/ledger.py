"""Accounts and reservations held in the engine's memory.

The engine is the only writer of balances (charges happen only through it),
so it can keep the accounts it has just read, and correct their balances
itself after every committed charge. Admin changes made behind its back
(a top-up, a blocked account) are seen within ``[Radius] Account_Cache_sec``.

Reservations (funds held by calls being authorized) live here so that an
authorization needs no database write: two calls on one account never spend
the same money because both are decided in this one process. They are also
written behind to ``active_calls`` with the next group commit, and read
back at start, so a restart does not forget calls in progress.

One engine process per billing database: that is the deployment (supervisor
runs one ``radiusd``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from billing.store import AccountView


class AccountCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._by_id: dict[str, tuple[float, AccountView]] = {}
        self._id_of: dict[int, str] = {}
        self._lock = threading.Lock()

    def get(self, account_id: str) -> AccountView | None:
        with self._lock:
            hit = self._by_id.get(account_id)
            if hit is None or hit[0] < self.clock():
                return None
            return hit[1]

    def put(self, acct: AccountView) -> None:
        with self._lock:
            self._by_id[acct.account_id] = (self.clock() + self.ttl, acct)
            self._id_of[acct.pk] = acct.account_id
            if len(self._by_id) > 200_000:
                now = self.clock()
                self._by_id = {k: v for k, v in self._by_id.items() if v[0] >= now}

    def cached_pks(self) -> list[int]:
        with self._lock:
            return list(self._id_of)

    def refresh(self, fresh: list[AccountView], gone: set[int]) -> None:
        """Replace cached accounts by what the database says now."""
        with self._lock:
            until = self.clock() + self.ttl
            for acct in fresh:
                self._by_id[acct.account_id] = (until, acct)
                self._id_of[acct.pk] = acct.account_id
            for pk in gone:
                account_id = self._id_of.pop(pk, None)
                if account_id:
                    self._by_id.pop(account_id, None)

    def charged(self, account_pk: int, delta: Decimal, customer_delta: Decimal) -> None:
        """A committed charge: move the cached balance as the database did."""
        with self._lock:
            account_id = self._id_of.get(account_pk)
            hit = self._by_id.get(account_id) if account_id else None
            if hit is None:
                return
            acct = hit[1]
            self._by_id[acct.account_id] = (hit[0], replace(
                acct, balance=acct.balance + delta,
                customer_balance=acct.customer_balance + customer_delta))

    def forget(self, account_pk: int) -> None:
        with self._lock:
            account_id = self._id_of.pop(account_pk, None)
            if account_id:
                self._by_id.pop(account_id, None)

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._id_of.clear()


class Ledger:
    """Funds held by calls in progress, per account."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._held: dict[int, dict[str, tuple[Decimal, float]]] = {}
        self._account_of: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserved(self, account_pk: int, exclude_call: str = "") -> Decimal:
        now = self.clock()
        with self._lock:
            calls = self._held.get(account_pk)
            if not calls:
                return Decimal(0)
            total = Decimal(0)
            for key, (amount, expires) in list(calls.items()):
                if expires < now:
                    del calls[key]
                    self._account_of.pop(key, None)
                elif key != exclude_call:
                    total += amount
            return total

    def hold(self, account_pk: int, call_key: str, amount: Decimal, ttl: float) -> None:
        with self._lock:
            self._held.setdefault(account_pk, {})[call_key] = (amount, self.clock() + ttl)
            self._account_of[call_key] = account_pk

    def release(self, call_key: str) -> None:
        with self._lock:
            pk = self._account_of.pop(call_key, None)
            if pk is not None:
                calls = self._held.get(pk)
                if calls is not None:
                    calls.pop(call_key, None)
                    if not calls:
                        del self._held[pk]

    def count(self) -> int:
        with self._lock:
            return len(self._account_of)
