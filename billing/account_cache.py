"""Accounts held in an engine's memory, to answer without a database round trip.

The cache only proposes: a reservation is granted by the database's
conditional statement (``billing.store``), so an account read a moment ago,
changed since by another engine or by an admin, can never be overspent. The
cache is corrected after every commit that touched an account and re-read
whole every half second, so admin changes show on every engine within a
second.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from billing.store import LOGIN_FREE, AccountView


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

    def adjust(self, account_pk: int, balance: Decimal = Decimal(0),
               customer_balance: Decimal = Decimal(0), reserved: Decimal = Decimal(0),
               customer_reserved: Decimal = Decimal(0), calls: int = 0) -> None:
        """A committed change: move the cached account as the database did."""
        with self._lock:
            account_id = self._id_of.get(account_pk)
            hit = self._by_id.get(account_id) if account_id else None
            if hit is None:
                return
            acct = hit[1]
            self._by_id[acct.account_id] = (hit[0], replace(
                acct, balance=acct.balance + balance,
                customer_balance=acct.customer_balance + customer_balance,
                reserved=acct.reserved + reserved,
                customer_reserved=acct.customer_reserved + customer_reserved,
                calls=acct.calls + calls, customer_calls=acct.customer_calls + calls))

    def login(self, account_pk: int, call_key: str, until: dt.datetime | None) -> None:
        """A committed login (or logout, with ``LOGIN_FREE``): without it a
        second call of the same account, right after the first one's Stop,
        would be refused from the cached holder until the next refresh."""
        with self._lock:
            account_id = self._id_of.get(account_pk)
            hit = self._by_id.get(account_id) if account_id else None
            if hit is None:
                return
            self._by_id[hit[1].account_id] = (hit[0], replace(
                hit[1], login_call=call_key, login_until=until))

    def logout(self, account_pk: int, call_key: str) -> None:
        """The Stop of ``call_key`` freed the account, if that call held it."""
        with self._lock:
            account_id = self._id_of.get(account_pk)
            hit = self._by_id.get(account_id) if account_id else None
            if hit is None or hit[1].login_call != call_key:
                return
            self._by_id[hit[1].account_id] = (hit[0], replace(
                hit[1], login_call=LOGIN_FREE, login_until=None))

    def forget(self, account_pk: int) -> None:
        with self._lock:
            account_id = self._id_of.pop(account_pk, None)
            if account_id:
                self._by_id.pop(account_id, None)

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._id_of.clear()
