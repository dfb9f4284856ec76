"""Accounts held in an engine's memory, to answer without a database round trip.

The cache only proposes: a reservation is granted by the database's
conditional statement (``billing.store``), so an account read a moment ago,
changed since by another engine or by an admin, can never be overspent. The
cache is corrected after every commit that touched an account, and every
half second the accounts in use are checked (a stamp per account compared,
only the changed ones read whole and rebuilt), so admin changes show on every engine within a
second. An account no request used for ``ttl`` seconds is dropped rather
than re-read, so the refresh costs what is in use, not what was ever seen.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from billing.store import LOGIN_FREE, AccountStamp, AccountView, traffic_moved, with_values


class _Entry:
    """One cached account: the view the engine reads, the stamp of the row
    it was built from (``traffic_moved`` once a commit moved the view away
    from it, so the next refresh sets its traffic columns again whatever the
    stamp says), and until when it stays without a request using it."""

    __slots__ = ("view", "stamp", "until")

    def __init__(self, view: AccountView, stamp: AccountStamp | None, until: float) -> None:
        self.view = view
        self.stamp = stamp
        self.until = until


class AccountCache:
    """``ttl``: how long an account stays when no request uses it
    (``[Radius] Account_Cache_sec``). A request that finds it keeps it
    another ``ttl``; the refresh keeps nothing, so the accounts re-read are
    the ones in use, not every account ever seen."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._by_id: dict[str, _Entry] = {}
        self._id_of: dict[int, str] = {}
        # The same entries by pk % len(self._slices): the refresh reads one
        # slice per turn, 32 turns a second, and walking the whole cache
        # each turn to find the slice's 60 of 1,000 accounts was a third of
        # the refresh's CPU (py-spy, two processes at 1,000/s).
        self._slices: list[dict[int, _Entry]] = [{}]
        self._lock = threading.Lock()

    def get(self, account_id: str) -> AccountView | None:
        with self._lock:
            hit = self._by_id.get(account_id)
            if hit is None:
                return None
            now = self.clock()
            if hit.until < now:
                return None
            hit.until = now + self.ttl
            return hit.view

    def put(self, acct: AccountView, stamp: AccountStamp | None = None) -> None:
        with self._lock:
            self._put(acct, stamp, self.clock() + self.ttl)
            if len(self._by_id) > 200_000:  # no refresh running to drop the idle
                self._drop_idle(self.clock())

    def _put(self, acct: AccountView, stamp: AccountStamp | None, until: float) -> None:
        old = self._id_of.get(acct.pk)
        if old is not None and old != acct.account_id:  # renamed: the old name is gone
            self._by_id.pop(old, None)
        prior = self._by_id.get(acct.account_id)
        if prior is not None and prior.view.pk != acct.pk:  # the name now another pk's
            self._drop(acct.account_id)
        entry = _Entry(acct, stamp, until)
        self._by_id[acct.account_id] = entry
        self._id_of[acct.pk] = acct.account_id
        self._slices[acct.pk % len(self._slices)][acct.pk] = entry

    def _drop(self, account_id: str) -> None:
        hit = self._by_id.pop(account_id, None)
        if hit is None:
            return
        pk = hit.view.pk
        if self._id_of.get(pk) == account_id:
            del self._id_of[pk]
            self._slices[pk % len(self._slices)].pop(pk, None)

    def _drop_idle(self, now: float) -> None:
        for account_id, hit in list(self._by_id.items()):
            if hit.until < now:
                self._drop(account_id)

    def to_refresh(self, share: tuple[int, int] = (0, 1)
                   ) -> dict[int, tuple[AccountView, AccountStamp | None]]:
        """Of ``share`` (k, n: the pks with pk % n == k), drop the accounts no
        request used for ``ttl``; the others' pks with the stamp each view
        was built with, for the refresh to compare."""
        k, n = share
        with self._lock:  # the packet loop waits for this lock
            if n != len(self._slices):
                self._slices = [{} for _ in range(n)]
                for pk, account_id in self._id_of.items():
                    entry = self._by_id.get(account_id)
                    if entry is not None:
                        self._slices[pk % n][pk] = entry
            now = self.clock()
            out: dict[int, tuple[AccountView, AccountStamp | None]] = {}
            idle: list[str] = []
            for pk, hit in self._slices[k].items():
                if hit.until < now:
                    idle.append(hit.view.account_id)
                else:
                    out[pk] = (hit.view, hit.stamp)
            for account_id in idle:
                self._drop(account_id)
            return out

    def refresh(self, changed: Mapping[int, tuple[AccountView, AccountStamp]],
                gone: Iterable[int]) -> None:
        """What the database says now: ``changed`` replace their cached
        views (a request's use still decides how long they stay), ``gone``
        (deleted) are forgotten. An account dropped while the refresh
        read stays dropped; one a look-up read again meanwhile takes the
        refresh's view, and its stamp sets it right at the next refresh."""
        with self._lock:
            for pk, (acct, stamp) in changed.items():
                account_id = self._id_of.get(pk)
                hit = self._by_id.get(account_id) if account_id is not None else None
                if hit is not None:
                    self._put(acct, stamp, hit.until)
            for pk in gone:
                account_id = self._id_of.get(pk)
                if account_id is not None:
                    self._drop(account_id)

    def adjust(self, account_pk: int, balance: Decimal = Decimal(0),
               customer_balance: Decimal = Decimal(0), reserved: Decimal = Decimal(0),
               customer_reserved: Decimal = Decimal(0), calls: int = 0) -> None:
        """A committed change: move the cached account as the database did."""
        with self._lock:
            hit = self._hit(account_pk)
            if hit is None:
                return
            acct = hit.view
            hit.stamp = traffic_moved(hit.stamp)  # set again from the row at the next refresh
            hit.view = with_values(acct, {
                "balance": acct.balance + balance,
                "customer_balance": acct.customer_balance + customer_balance,
                "reserved": acct.reserved + reserved,
                "customer_reserved": acct.customer_reserved + customer_reserved,
                "calls": acct.calls + calls, "customer_calls": acct.customer_calls + calls})

    def login(self, account_pk: int, call_key: str, until: dt.datetime | None) -> None:
        """A committed login (or logout, with ``LOGIN_FREE``): without it a
        second call of the same account, right after the first one's Stop,
        would be refused from the cached holder until the next refresh."""
        with self._lock:
            hit = self._hit(account_pk)
            if hit is None:
                return
            hit.stamp = traffic_moved(hit.stamp)
            hit.view = with_values(hit.view, {"login_call": call_key, "login_until": until})

    def logout(self, account_pk: int, call_key: str) -> None:
        """The Stop of ``call_key`` freed the account, if that call held it."""
        with self._lock:
            hit = self._hit(account_pk)
            if hit is None or hit.view.login_call != call_key:
                return
            hit.stamp = traffic_moved(hit.stamp)
            hit.view = with_values(hit.view, {"login_call": LOGIN_FREE, "login_until": None})

    def _hit(self, account_pk: int) -> _Entry | None:
        account_id = self._id_of.get(account_pk)
        return self._by_id.get(account_id) if account_id is not None else None

    def forget(self, account_pk: int) -> None:
        with self._lock:
            account_id = self._id_of.get(account_pk)
            if account_id is not None:
                self._drop(account_id)

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._id_of.clear()
            for part in self._slices:
                part.clear()
