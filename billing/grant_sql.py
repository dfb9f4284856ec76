"""The busy-batch grant (``SqlStore._grant_together``) as prepared text.

Why not SQLAlchemy Core here: its statement has a ``CASE id WHEN ...`` per
account of the batch, four times, and building that expression, computing
its cache key and extracting its parameters cost more CPU in the committer
than everything else of a reservation batch (py-spy, bench/bench_radius.py:
about half of the committer's time). The text depends only on how many
accounts (customers) the batch touches, so it is built once per size and
kept; each batch then only flattens its numbers into a tuple. The
statements are the same conditional UPDATEs as before (the reservation
contract in docs/billing.md), written once for both dialects.

Pure functions, no database: the store executes what they return.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

Params = tuple[Any, ...]


def placeholder(paramstyle: str) -> str:
    """The DB-API marker of a positional parameter for this driver."""
    if paramstyle in ("format", "pyformat"):
        return "%s"  # PyMySQL
    if paramstyle == "qmark":
        return "?"  # sqlite3
    raise ValueError(f"unsupported paramstyle {paramstyle!r}")


def _case(ph: str, n: int, else_zero: bool) -> str:
    whens = " ".join([f"WHEN {ph} THEN {ph}"] * n)
    return f"(CASE id {whens}{' ELSE 0' if else_zero else ''} END)"


@lru_cache(maxsize=512)
def customers_sql(ph: str, n_customers: int, n_funds: int) -> str:
    """``n_customers`` customers gain calls; ``n_funds`` of them also hold
    funds (credit limit), the others only count calls."""
    want = _case(ph, n_funds, else_zero=True) if n_funds else "0"
    calls = _case(ph, n_customers, else_zero=False)
    ids = ", ".join([ph] * n_customers)
    return (f"UPDATE customers SET reserved = reserved + {want}, calls = calls + {calls} "
            f"WHERE id IN ({ids}) "
            f"AND (max_calls IS NULL OR calls + {calls} <= max_calls) "
            f"AND (credit_limit IS NULL OR {want} = 0 "
            f"OR credit_limit - balance - reserved >= {want})")


def customers_params(funds: Mapping[int, Decimal], counts: Mapping[int, int]) -> Params:
    """The parameters of ``customers_sql`` in the order of its markers (money
    as Decimal: billing.sql_pipeline binds it as each driver needs)."""
    want = [x for k in sorted(funds) for x in (k, funds[k])]
    calls = [x for k in sorted(counts) for x in (k, counts[k])]
    ids = sorted(counts)
    return (*want, *calls, *ids, *calls, *want, *want)


@lru_cache(maxsize=512)
def accounts_sql(ph: str, n_accounts: int) -> str:
    want = _case(ph, n_accounts, else_zero=False)
    calls = _case(ph, n_accounts, else_zero=False)
    ids = ", ".join([ph] * n_accounts)
    return (f"UPDATE accounts SET reserved = reserved + {want}, calls = calls + {calls} "
            f"WHERE id IN ({ids}) "
            f"AND (CASE WHEN billing_model = {ph} THEN balance "
            f"ELSE credit_limit - balance END) - reserved >= {want} "
            f"AND (max_calls IS NULL OR calls + {calls} <= max_calls)")


def accounts_params(funds: Mapping[int, Decimal], counts: Mapping[int, int], debit: str
                    ) -> Params:
    """The parameters of ``accounts_sql``; ``funds`` and ``counts`` have the same keys."""
    if set(funds) != set(counts):
        raise ValueError("every account of the grant needs an amount and a count")
    want = [x for k in sorted(funds) for x in (k, funds[k])]
    calls = [x for k in sorted(counts) for x in (k, counts[k])]
    return (*want, *calls, *sorted(counts), debit, *want, *calls)


@lru_cache(maxsize=512)
def again_sql(ph: str, n_keys: int, for_update: bool) -> str:
    """The calls of the batch that hold a reservation already (authorized
    again): parameters ``leg``, then the call keys."""
    return (f"SELECT id FROM active_calls WHERE leg = {ph} "
            f"AND conf_id IN ({', '.join([ph] * n_keys)})"
            + (" FOR UPDATE" if for_update else ""))


# The columns of a reservation's active_calls row, in the order of
# insert_calls_sql's markers (billing.store._reservation_row has them all).
CALL_COLUMNS = ("conf_id", "leg", "account_id", "customer_id", "node_ip", "cli", "cld",
                "reserved", "started_at", "updated_at", "expires_at", "session_id",
                "user_name", "credit_time", "leg_conf_id", "incoming_conf_id")


@lru_cache(maxsize=512)
def insert_calls_sql(ph: str, n_rows: int, ignore: str) -> str:
    one = f"({', '.join([ph] * len(CALL_COLUMNS))})"
    return (f"INSERT {ignore} INTO active_calls ({', '.join(CALL_COLUMNS)}) "
            f"VALUES {', '.join([one] * n_rows)}")
