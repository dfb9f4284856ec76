"""The account look-up and the cache refresh as prepared text
(``SqlStore.find_account``, ``SqlStore.changed_accounts``).

Why not SQLAlchemy Core here: every engine re-reads every cached account
every half second, and building that ``SELECT`` in Core, computing its
cache key, adapting every column of every row and building a new
``AccountView`` per row cost about a seventh of a busy engine's CPU with
1,000 accounts cached (py-spy, bench/bench_radius.py), growing with the
accounts cached rather than with the traffic. Here the text is built once
per chunk size for both dialects; the driver's rows come back as they are
(tuples, compared with the cached ones in C), and only a row that differs
is converted, by SQLAlchemy's own result processors for the dialect, so a
view built here equals the one Core built.

Pure functions, no database: the store executes what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstrumentedAttribute

from billing import models as m

# The account view's fields and where each comes from, named once: both
# statements select them in this order and the store builds the view by
# these names. ``pk`` first: the refresh matches rows to cached entries by it.
VIEW_COLUMNS: tuple[tuple[str, InstrumentedAttribute[Any]], ...] = (
    ("pk", m.Account.id), ("account_id", m.Account.account_id),
    ("customer_id", m.Account.customer_id), ("customer_name", m.Customer.name),
    ("product_id", m.Account.product_id), ("billing_model", m.Account.billing_model),
    ("balance", m.Account.balance), ("credit_limit", m.Account.credit_limit),
    ("voip_password", m.Account.voip_password), ("blocked", m.Account.blocked),
    ("customer_blocked", m.Customer.blocked), ("activation_date", m.Account.activation_date),
    ("expiration_date", m.Account.expiration_date),
    ("preferred_lang", m.Account.preferred_lang),
    ("redirect_number", m.Account.redirect_number), ("currency", m.Customer.currency),
    ("customer_balance", m.Customer.balance),
    ("customer_credit_limit", m.Customer.credit_limit), ("reserved", m.Account.reserved),
    ("customer_reserved", m.Customer.reserved), ("login_call", m.Account.login_call),
    ("login_until", m.Account.login_until), ("calls", m.Account.calls),
    ("max_calls", m.Account.max_calls), ("customer_calls", m.Customer.calls),
    ("customer_max_calls", m.Customer.max_calls),
)
FIELDS = tuple(name for name, _ in VIEW_COLUMNS)

# Ids per refresh statement. The last chunk is padded (its last id repeated:
# IN ignores duplicates) to a power of two, so a handful of texts serve every
# cache size; below SQLite's oldest variable limit (999).
CHUNK = 512

Converter = Callable[[Any], Any] | None


def _select(ph: str) -> str:
    cols = ", ".join(f"{c.table.name}.{c.name}" for _, c in VIEW_COLUMNS)  # type: ignore[attr-defined]
    return f"SELECT {cols} FROM accounts JOIN customers ON customers.id = accounts.customer_id"


@lru_cache(maxsize=16)
def by_account_id_sql(ph: str) -> str:
    """The look-up of one account by what the gateway sends (``User-Name``)."""
    return f"{_select(ph)} WHERE accounts.account_id = {ph}"


@lru_cache(maxsize=64)
def by_pks_sql(ph: str, n: int) -> str:
    """``n`` accounts by primary key (the cache refresh)."""
    return f"{_select(ph)} WHERE accounts.id IN ({', '.join([ph] * n)})"


def chunks(pks: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """``pks`` in statements of at most ``CHUNK`` ids, each padded to a
    power of two by repeating its last id."""
    for i in range(0, len(pks), CHUNK):
        part = tuple(pks[i:i + CHUNK])
        size = 1
        while size < len(part):
            size *= 2
        yield part + (part[-1],) * (size - len(part))


def converters(dialect: Dialect) -> tuple[Converter, ...]:
    """Per column, what turns the driver's value into the view's (None: as
    it comes): the result processors Core applies for this dialect (SQLite
    gives money as float and times as text, MariaDB booleans as integers)."""
    out: list[Converter] = []
    for _, col in VIEW_COLUMNS:
        impl = col.type.dialect_impl(dialect)
        out.append(impl.result_processor(dialect, None))
    return tuple(out)


def convert(row: Sequence[Any], procs: Sequence[Converter]) -> dict[str, Any]:
    """The view's fields, by name, from one driver row."""
    return {name: (p(v) if p is not None and v is not None else v)
            for name, p, v in zip(FIELDS, procs, row, strict=True)}
