"""The statements of a batch of records (``SqlStore._execute``) as prepared
text, for both dialects.

Why not SQLAlchemy Core here: compiling the batch's ``CASE id WHEN ...``
updates anew for every batch was a fifth of the committer's CPU on a batch
of Stops (py-spy, bench/bench_radius.py); their text depends only on how
many rows they touch, so it is built once per size and kept (the pattern of
billing/grant_sql.py). Pure functions, no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any


def _marks(ph: str, n: int) -> str:
    return ", ".join([ph] * n)


@lru_cache(maxsize=1024)
def add_by_id_sql(ph: str, table: str, sizes: tuple[tuple[str, int], ...], n_ids: int) -> str:
    """``UPDATE table SET col = col + (CASE id WHEN ? THEN ? ... ELSE 0 END), ...
    WHERE id IN (...)``: per column, how many ids it moves."""
    sets = ", ".join(
        f"{col} = {col} + (CASE id {' '.join([f'WHEN {ph} THEN {ph}'] * n)} ELSE 0 END)"
        for col, n in sizes)
    return f"UPDATE {table} SET {sets} WHERE id IN ({_marks(ph, n_ids)})"


def add_by_id(ph: str, table: str, columns: Mapping[str, Mapping[int, Any]]
              ) -> tuple[str, list[Any]]:
    """The statement and its parameters: every column's deltas by id (a
    column may move fewer ids than the statement touches: ELSE 0)."""
    used = [(col, deltas) for col, deltas in columns.items() if deltas]
    ids = sorted(set().union(*(d.keys() for _, d in used)))
    params: list[Any] = []
    for _, deltas in used:
        for k in sorted(deltas):
            params += (k, deltas[k])
    params += ids
    return add_by_id_sql(ph, table, tuple((c, len(d)) for c, d in used), len(ids)), params


@lru_cache(maxsize=256)
def delete_calls_sql(ph: str, n: int) -> str:
    return f"DELETE FROM active_calls WHERE id IN ({_marks(ph, n)})"


@lru_cache(maxsize=256)
def logout_sql(ph: str, n_accounts: int, n_keys: int) -> str:
    """Free the login holds these calls took (and only theirs)."""
    return (f"UPDATE accounts SET login_call = '', login_until = NULL "
            f"WHERE id IN ({_marks(ph, n_accounts)}) AND login_call IN ({_marks(ph, n_keys)})")


def logout(ph: str, logouts: Mapping[int, set[str]]) -> tuple[str, Sequence[Any]]:
    keys = sorted(set().union(*logouts.values()))
    return logout_sql(ph, len(logouts), len(keys)), [*sorted(logouts), *keys]
