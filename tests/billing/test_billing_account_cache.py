"""The engine's account cache and its refresh (billing.account_cache,
billing.cached_store, billing.account_sql): the prepared-text look-up builds
the same view as SQLAlchemy Core did, the refresh sees every kind of change
(traffic, an admin's, a deletion) and rebuilds nothing that did not change,
and accounts no request uses are dropped instead of re-read."""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event, select, update

from billing import account_sql
from billing import models as m
from billing.account_cache import AccountCache
from billing.cached_store import CachedStore
from billing.server import refresh_turns
from billing.store import AccountView, SqlStore
from tests.billing.test_billing_money_path import NOW, FakeClock, authz, credit_time, engine_on

DEBIT = "193.100.201.1"  # demo accounts: a debit one and a credit one with a customer limit
CREDIT = "4202111222"


def core_view(db, account_id: str) -> AccountView:  # type: ignore[no-untyped-def]
    """The view as the Core statement before the prepared text built it."""
    a, c = m.Account, m.Customer
    cols = [col.label(name) for name, col in account_sql.VIEW_COLUMNS]
    with db.connect() as conn:
        row = conn.execute(select(*cols).join(c, c.id == a.customer_id)
                           .where(a.account_id == account_id)).one()
    return AccountView(**row._mapping)


def view(account_id: str, pk: int = 1, **kw) -> AccountView:  # type: ignore[no-untyped-def]
    base = dict(pk=pk, account_id=account_id, customer_id=1, customer_name="c", product_id=1,
                billing_model="debit", balance=Decimal(1), credit_limit=Decimal(0),
                voip_password="", blocked=False, customer_blocked=False,
                activation_date=None, expiration_date=None, preferred_lang="en",
                redirect_number="", currency="USD", customer_balance=Decimal(0),
                customer_credit_limit=None)
    base.update(kw)
    return AccountView(**base)  # type: ignore[arg-type]


# ----------------------------------------------------------------- pure
@pytest.mark.unit
def test_chunks_pad_to_a_power_of_two_with_the_last_id():
    assert list(account_sql.chunks([1, 2, 3])) == [(1, 2, 3, 3)]
    parts = list(account_sql.chunks(list(range(1, 601))))
    assert [len(p) for p in parts] == [512, 128]
    assert parts[1][-1] == 600 and set(parts[1]) == set(range(513, 601))
    assert list(account_sql.chunks([])) == []


@pytest.mark.unit
def test_the_texts_cover_every_column_of_the_view():
    """A column left out of the whole text would be a change no engine ever
    sees; one left out of the admin's, an admin change taken for traffic."""
    assert set(account_sql.FIELDS) == set(AccountView.__dataclass_fields__)
    assert set(account_sql.TRAFFIC) | set(account_sql.ADMIN) == set(account_sql.FIELDS)
    whole = account_sql.whole_text_sql("mysql")
    admin = account_sql.admin_text_sql("mysql")
    for name, col in account_sql.VIEW_COLUMNS:
        ref = f"COALESCE({col.table.name}.{col.name}, 'N')"
        assert ref in whole, name
        assert (ref in admin) == (name not in account_sql.TRAFFIC), name
    assert "LENGTH(accounts.voip_password)" in admin  # strings cannot shift into each other
    assert "LENGTH(accounts.login_call)" in whole
    assert " || " in account_sql.whole_text_sql("sqlite")


@pytest.mark.unit
def test_idle_accounts_are_dropped_not_refreshed():
    clock = FakeClock()
    cache = AccountCache(10.0, clock=clock)
    cache.put(view("a", pk=1), ("admin", "whole"))
    cache.put(view("b", pk=2), ("admin", "whole"))
    clock.t += 6
    assert cache.get("a") is not None  # in use: kept another 10 s
    clock.t += 6
    assert set(cache.to_refresh()) == {1}  # b idle for 12 s: dropped
    assert cache.get("b") is None
    clock.t += 3
    assert cache.get("a") is not None  # 9 s after its use
    clock.t += 11
    assert cache.to_refresh() == {}  # the refresh itself keeps nothing alive


@pytest.mark.unit
def test_a_committed_change_is_set_again_from_the_row_at_the_next_refresh():
    cache = AccountCache(10.0, clock=FakeClock())
    cache.put(view("a", pk=1), ("admin", "whole"))
    cache.adjust(1, reserved=Decimal("0.5"), calls=1)
    acct, stamp = cache.to_refresh()[1]
    assert acct.reserved == Decimal("0.5") and stamp == ("admin", None)  # traffic moved
    fresh = dataclasses.replace(acct, reserved=Decimal("0.4"))
    cache.refresh({1: (fresh, ("admin", "whole 2"))}, gone=())
    got = cache.get("a")
    assert got is not None and got.reserved == Decimal("0.4")


@pytest.mark.unit
def test_commits_move_a_new_view_as_replace_would_and_leave_the_old_one():
    """adjust, login and logout build the moved view without
    dataclasses.replace (a tenth of the committer's CPU): the same view,
    and the one a request is deciding from meanwhile stays as it was."""
    cache = AccountCache(10.0, clock=FakeClock())
    before = view("a", pk=1, billing_model="credit", balance=Decimal("2"),
                  credit_limit=Decimal("10"), customer_credit_limit=Decimal("50"),
                  customer_balance=Decimal("7"), reserved=Decimal("1"),
                  customer_reserved=Decimal("3"), calls=2, customer_calls=5)
    cache.put(before, ("admin", "whole"))
    cache.adjust(1, balance=Decimal("0.25"), customer_balance=Decimal("0.25"),
                 reserved=Decimal("-0.5"), customer_reserved=Decimal("-0.5"), calls=-1)
    moved = cache.get("a")
    assert moved == dataclasses.replace(
        before, balance=Decimal("2.25"), customer_balance=Decimal("7.25"),
        reserved=Decimal("0.5"), customer_reserved=Decimal("2.5"), calls=1, customer_calls=4)
    assert moved is not None and moved.funds_left == min(Decimal("7.25"), Decimal("40.25"))
    assert (before.balance, before.reserved, before.calls) == (Decimal("2"), Decimal("1"), 2)
    cache.login(1, "call-1", None)
    assert cache.get("a") == dataclasses.replace(moved, login_call="call-1")
    cache.logout(1, "call-2")  # another call's Stop frees nothing
    assert cache.get("a") == dataclasses.replace(moved, login_call="call-1")
    cache.logout(1, "call-1")
    assert cache.get("a") == moved
    with pytest.raises(dataclasses.FrozenInstanceError):
        moved.balance = Decimal(0)  # type: ignore[misc]


@pytest.mark.unit
def test_refresh_follows_a_rename_and_forgets_the_deleted():
    cache = AccountCache(10.0, clock=FakeClock())
    cache.put(view("old", pk=1))
    cache.put(view("b", pk=2))
    cache.refresh({1: (view("new", pk=1), ("x", "y"))}, gone=[2])
    assert cache.get("old") is None and cache.get("b") is None
    got = cache.get("new")
    assert got is not None and got.pk == 1


# ------------------------------------------------------- on both databases
@pytest.mark.parametrize("account_id", [DEBIT, CREDIT])
def test_prepared_text_builds_the_view_core_built(db, account_id):
    engine_on(db)
    store = SqlStore(db)
    assert store.find_account(account_id) == core_view(db, account_id)
    pk = core_view(db, account_id).pk
    assert store.find_accounts([pk]) == [core_view(db, account_id)]
    assert store.find_account("nobody") is None


def test_refresh_sees_traffic_admin_changes_and_deletions(db):
    eng, store, _ = engine_on(db, fraud_active=False)
    debit = store.find_account(DEBIT)
    credit = store.find_account(CREDIT)
    assert debit is not None and credit is not None
    assert store.refresh_accounts() == 0  # nothing changed: nothing rebuilt
    # traffic: another engine's reservation, a charge behind our back
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.id == debit.pk).values(
            reserved=Decimal("0.10"), calls=1, balance=Decimal("0.90")))
    assert store.refresh_accounts() == 1
    assert store.find_account(DEBIT) == core_view(db, DEBIT)
    # an admin's changes: block, password, the customer's limit (shared)
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.id == debit.pk).values(
            blocked=True, voip_password="n3w|pw"))
        c.execute(update(m.Customer).where(m.Customer.id == credit.customer_id).values(
            credit_limit=Decimal("7.5")))
    assert store.refresh_accounts() == 2
    for account_id in (DEBIT, CREDIT):
        assert store.find_account(account_id) == core_view(db, account_id)
    got = store.find_account(DEBIT)
    assert got is not None and got.blocked and got.voip_password == "n3w|pw"
    # a password whose characters move into the next column still shows
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.id == debit.pk).values(
            voip_password="n3w", redirect_number="|pw" + (got.redirect_number or "")))
    assert store.refresh_accounts() == 1
    assert store.find_account(DEBIT) == core_view(db, DEBIT)
    # deleted behind our back: forgotten
    with db.begin() as c:
        c.execute(delete(m.Account).where(m.Account.id == credit.pk))
    store.refresh_accounts()
    assert not store.in_memory(CREDIT)
    assert store.refresh_accounts() == 0


def test_own_commits_then_refresh_match_the_database(db):
    """The engine's own reservation moves the cached view at once; the next
    refresh sets it from the row again, equal to what Core reads."""
    eng, store, _ = engine_on(db, fraud_active=False)
    assert credit_time(eng.authorize(authz("c1"))) == 180
    moved = store.accounts.get(DEBIT)
    assert moved is not None and moved.reserved == Decimal("0.87")
    assert store.refresh_accounts() == 1
    assert store.accounts.get(DEBIT) == core_view(db, DEBIT)
    assert store.refresh_accounts() == 0


def test_cached_store_refresh_on_a_fresh_cache_reads_nothing(db):
    engine_on(db)
    store = CachedStore(SqlStore(db), cache=AccountCache(10.0, clock=FakeClock()))
    assert store.refresh_accounts() == 0


def test_busy_rounds_read_traffic_at_once_and_still_see_admin_changes(db):
    """When most cached accounts changed at the last refresh, the next one
    reads every account's traffic columns without the texts first: an
    admin's change still reads the account whole, and a quiet round goes
    back to texts."""
    engine_on(db)
    store = CachedStore(SqlStore(db), cache=AccountCache(10.0, clock=FakeClock()))
    debit, credit = store.find_account(DEBIT), store.find_account(CREDIT)
    assert debit is not None and credit is not None
    with db.begin() as c:
        c.execute(update(m.Account).values(calls=m.Account.calls + 1))
    assert store.refresh_accounts() == 2 and store.db._busy
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.id == debit.pk).values(
            expiration_date=NOW, calls=m.Account.calls - 1))
    assert store.refresh_accounts() == 1 and not store.db._busy
    for account_id in (DEBIT, CREDIT):
        assert store.find_account(account_id) == core_view(db, account_id)
    assert store.refresh_accounts() == 0


def test_rounds_without_holds_see_admin_changes_and_charges_not_reservations(db):
    """Between two full rounds (the server reads the holds every fourth), a
    refresh rebuilds only the accounts an admin or a charge changed; another
    engine's reservation waits for the next full round (the database grants
    reservations: the cache only proposes)."""
    eng, store, _ = engine_on(db, fraud_active=False)
    debit = store.find_account(DEBIT)
    credit = store.find_account(CREDIT)
    assert debit is not None and credit is not None
    store.refresh_accounts(holds=False)  # the first look records the texts
    assert store.refresh_accounts(holds=False) == 0
    with db.begin() as c:  # another engine's reservation
        c.execute(update(m.Account).where(m.Account.id == debit.pk).values(
            reserved=Decimal("0.10"), calls=1, login_call="x", login_until=NOW))
    assert store.refresh_accounts(holds=False) == 0
    assert store.find_account(DEBIT) == debit  # not yet
    with db.begin() as c:  # an admin's block and a top-up of the other account
        c.execute(update(m.Account).where(m.Account.id == debit.pk).values(blocked=True))
        c.execute(update(m.Account).where(m.Account.id == credit.pk).values(
            balance=Decimal("-5")))
    assert store.refresh_accounts(holds=False) == 2
    for account_id in (DEBIT, CREDIT):  # read whole: the holds came along
        assert store.find_account(account_id) == core_view(db, account_id)
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.id == credit.pk).values(calls=3))
    assert store.refresh_accounts(holds=False) == 0
    assert store.refresh_accounts() == 1  # the full round
    assert store.find_account(CREDIT) == core_view(db, CREDIT)


@pytest.mark.unit
def test_refresh_turns_read_every_share_once_a_round_and_the_holds_staggered():
    """The server's refresh in 16 turns a round: each share once a round,
    its holds every fourth round, and a quarter of the shares reading the
    holds in every round (no round that reads them all at once)."""
    turns = list(itertools.islice(refresh_turns(16, 4), 16 * 8))
    for r in range(8):
        one_round = turns[16 * r:16 * (r + 1)]
        assert sorted(share for _, share in one_round) == [(k, 16) for k in range(16)]
        assert sum(holds for holds, _ in one_round) == 4
    for k in range(16):
        rounds = [r for r, (holds, _) in enumerate(t for t in turns if t[1][0] == k) if holds]
        assert len(rounds) == 2 and rounds[1] - rounds[0] == 4
    assert list(itertools.islice(refresh_turns(1, 1), 3)) == [(True, (0, 1))] * 3


def test_a_share_refreshes_its_own_accounts_and_forgets_no_other_shares_texts(db):
    """One turn of the server's refresh reads one share of the cache (pk % n
    == k): an admin's change shows at its own share's turn, and a turn keeps
    the other shares' settled texts (forgotten, every account of the other
    share would be read whole at its next turn, as if an admin had changed
    it)."""
    engine_on(db)
    store = CachedStore(SqlStore(db), cache=AccountCache(10.0, clock=FakeClock()))
    debit, credit = store.find_account(DEBIT), store.find_account(CREDIT)
    assert debit is not None and credit is not None
    n = next(n for n in range(2, 100) if debit.pk % n != credit.pk % n)
    mine, other = (debit.pk % n, n), (credit.pk % n, n)
    store.refresh_accounts(holds=False, share=mine)  # the first looks record the texts
    store.refresh_accounts(holds=False, share=other)
    assert store.refresh_accounts(holds=False, share=mine) == 0
    assert store.refresh_accounts(holds=False, share=other) == 0
    with db.begin() as c:  # an admin blocks both
        c.execute(update(m.Account).values(blocked=True))
    assert store.refresh_accounts(holds=False, share=mine) == 1
    debit_now, credit_now = store.find_account(DEBIT), store.find_account(CREDIT)
    assert debit_now is not None and debit_now.blocked
    assert credit_now == credit  # its share's turn has not come
    assert store.refresh_accounts(share=other) == 1
    assert store.find_account(CREDIT) == core_view(db, CREDIT)
    # busy (most of its accounts changed) is told per share: a quiet turn of
    # one share does not send a busy one back to texts
    with db.begin() as c:
        c.execute(update(m.Account).where(m.Account.id == debit.pk).values(
            calls=m.Account.calls + 1))
    assert store.refresh_accounts(share=mine) == 1
    assert store.db._busy == {mine[0], other[0]}
    assert store.refresh_accounts(share=other) == 0 and store.db._busy == {mine[0]}
    assert store.find_account(DEBIT) == core_view(db, DEBIT)


def test_prefetch_reads_the_missing_accounts_in_one_statement(db):
    """A burst of requests whose accounts are not in memory (a process's
    cold start, accounts another process served last) reads them in one
    statement, not a round trip each; what it reads is what a look-up of
    one would have read, stamp included (the refresh then finds nothing
    changed)."""
    engine_on(db)
    store = CachedStore(SqlStore(db), cache=AccountCache(10.0, clock=FakeClock()))
    statements: list[str] = []

    def seen(conn, cursor, statement, *rest):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db, "before_cursor_execute", seen)
    try:
        assert store.prefetch([DEBIT, CREDIT, "nobody", DEBIT, ""]) == 2
        assert len([s for s in statements if "accounts.account_id IN" in s]) == 1
        statements.clear()
        views = {a: store.find_account(a) for a in (DEBIT, CREDIT)}
        assert statements == []  # answered from memory
        for account_id, view in views.items():
            assert view == core_view(db, account_id)
        statements.clear()
        assert store.prefetch([DEBIT, CREDIT]) == 0 and statements == []
        assert store.refresh_accounts() == 0
        store.forget(CREDIT)
        assert store.prefetch([CREDIT]) == 0  # one: its own look-up reads it
        assert not store.in_memory(CREDIT)
    finally:
        event.remove(db, "before_cursor_execute", seen)


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "forget", "gone", "idle", "turn", "clear"]),
                          st.integers(1, 12), st.sampled_from("abcdefgh"),
                          st.sampled_from([1, 3, 16])), max_size=40))
def test_the_refresh_slices_hold_every_cached_account_once(steps):  # type: ignore[no-untyped-def]
    """The refresh's slices are kept beside the cache (not found by walking
    it every turn): whatever the puts, renames, deletions, idling and changes
    of slice count, the slices of one round hold exactly the accounts a
    look-up finds, each in its own slice with the view a look-up gets."""
    clock = FakeClock()
    cache = AccountCache(10.0, clock=clock)
    last = 1  # the slice count of the last turn: checked first, before a new count rebuilds
    for op, pk, name, n in steps:
        if op == "put":  # a new account, a rename, or a name moving to another pk
            cache.put(view(name, pk=pk), ("admin", f"{name}{pk}"))
        elif op == "forget":
            cache.forget(pk)
        elif op == "gone":
            cache.refresh({}, gone=[pk])
        elif op == "idle":  # everything idles; the next turn drops what it walks
            clock.t += 11
        elif op == "turn":
            cache.to_refresh((pk % n, n))
            last = n
        else:
            cache.clear()
        # a look-up keeps what it finds: look up nothing here, but see what is found
        found = {v.pk: v for v in (cache.get(x) for x in "abcdefgh") if v is not None}
        for k in [last] + [x for x in (1, 3, 16) if x != last]:
            last = k
            got: dict[int, AccountView] = {}
            for part in range(k):
                share = cache.to_refresh((part, k))
                assert all(p % k == part for p in share)
                assert not set(share) & set(got)
                got.update({p: v for p, (v, _) in share.items()})
            assert got == found
