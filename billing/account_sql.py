"""The account look-up and the cache refresh as prepared text
(``SqlStore.find_account``, ``SqlStore.changed_accounts``).

Why not SQLAlchemy Core here: every engine re-reads every cached account
every half second, and building that ``SELECT`` in Core, computing its
cache key, adapting every column of every row and building a new
``AccountView`` per row cost about a seventh of a busy engine's CPU with
1,000 accounts cached (py-spy, bench/bench_radius.py), growing with the
accounts cached rather than with the traffic. Here the text is built once
per chunk size for both dialects. The refresh reads, per cached account,
one text of all its columns, concatenated by the database, and compares it
with the text its cached view was built from: equal, the account costs
nothing more. Where it differs, the eight columns traffic moves (funds,
reservations, calls, login) are read, with the text of the others: that
one equal, the traffic columns are converted into the cached view; not
equal (an admin's change), the account is read whole. Values are converted
by SQLAlchemy's own result processors for the dialect, so a view built
here equals the one Core built. (The store skips the texts where it knows
the traffic moved: accounts its own commits moved, and every account when
most changed at the last refresh.)

Pure functions, no database: the store executes what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any, TypeVar

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
K = TypeVar("K", int, str)


# What engines' commits move (reservations, charges, logins); every other
# column is an admin's change, rare.
TRAFFIC = ("balance", "reserved", "calls", "login_call", "login_until",
           "customer_balance", "customer_reserved", "customer_calls")


def _ref(col: Any) -> str:
    return f"{col.table.name}.{col.name}"


def _text(names: Sequence[str], dialect_name: str) -> str:
    """An expression whose text changes whenever one of these columns does:
    in a fixed order, strings preceded by their length (so no value can
    shift into its neighbour), NULL as ``N`` (never a number's or a date's
    text)."""
    cols = dict(VIEW_COLUMNS)
    parts: list[str] = []
    for name in names:
        ref = _ref(cols[name])
        if cols[name].type.python_type is str:
            parts.append(f"COALESCE(LENGTH({ref}), 'N')")
        parts.append(f"COALESCE({ref}, 'N')")
    if dialect_name == "sqlite":  # no CONCAT() before SQLite 3.44
        return " || '|' || ".join(parts)
    return "CONCAT(" + ", '|', ".join(parts) + ")"


ADMIN = tuple(name for name in FIELDS if name not in TRAFFIC)

# What calls hold rather than spend: moved by every reservation and Stop of
# every engine, and needed only to propose credit times (the database
# grants them), so they may be read less often than the rest.
HOLDS = ("reserved", "calls", "login_call", "login_until", "customer_reserved",
         "customer_calls")
SETTLED = tuple(name for name in TRAFFIC + ADMIN if name not in HOLDS)


def admin_text_sql(dialect_name: str) -> str:
    """The text of every column but ``TRAFFIC``: an admin's change shows in it."""
    return _text(ADMIN, dialect_name)


def whole_text_sql(dialect_name: str) -> str:
    """The text of every column of the view: the one thing the refresh reads
    of an account that did not change. One column instead of 26: PyMySQL
    parses each column of each row in Python, the server formats the same
    values either way."""
    return _text(TRAFFIC + ADMIN, dialect_name)


def _stamp(dialect_name: str) -> str:
    return f"{admin_text_sql(dialect_name)}, {whole_text_sql(dialect_name)}"


_FROM = "FROM accounts JOIN customers ON customers.id = accounts.customer_id"


def _columns(names: Sequence[str] = FIELDS) -> str:
    cols = dict(VIEW_COLUMNS)
    return ", ".join(_ref(cols[name]) for name in names)


def _in(ph: str, n: int) -> str:
    return f"WHERE accounts.id IN ({', '.join([ph] * n)})"


@lru_cache(maxsize=16)
def by_account_id_sql(ph: str, dialect_name: str) -> str:
    """One account by what the gateway sends (``User-Name``): the view's
    columns, then its admin text and whole text (its stamp)."""
    return f"SELECT {_columns()}, {_stamp(dialect_name)} {_FROM} WHERE accounts.account_id = {ph}"


@lru_cache(maxsize=64)
def by_account_ids_sql(ph: str, n: int, dialect_name: str) -> str:
    """``n`` accounts by what gateways send: the view's columns, then the stamp."""
    return (f"SELECT {_columns()}, {_stamp(dialect_name)} {_FROM} "
            f"WHERE accounts.account_id IN ({', '.join([ph] * n)})")


@lru_cache(maxsize=64)
def by_pks_sql(ph: str, n: int, dialect_name: str) -> str:
    """``n`` accounts by primary key: the view's columns, then the stamp."""
    return f"SELECT {_columns()}, {_stamp(dialect_name)} {_FROM} {_in(ph, n)}"


@lru_cache(maxsize=64)
def texts_sql(ph: str, n: int, dialect_name: str) -> str:
    """``n`` accounts' pk and whole text: what the refresh reads of each."""
    return f"SELECT accounts.id, {whole_text_sql(dialect_name)} {_FROM} {_in(ph, n)}"


@lru_cache(maxsize=64)
def settled_texts_sql(ph: str, n: int, dialect_name: str) -> str:
    """``n`` accounts' pk and the text of every column but the ``HOLDS``:
    an admin's change or a charge shows in it, another call's reservation
    does not."""
    return f"SELECT accounts.id, {_text(SETTLED, dialect_name)} {_FROM} {_in(ph, n)}"


@lru_cache(maxsize=64)
def traffic_sql(ph: str, n: int, dialect_name: str) -> str:
    """``n`` accounts' pk, ``TRAFFIC`` columns, then the stamp: what the
    refresh reads of an account whose text changed."""
    return (f"SELECT accounts.id, {_columns(TRAFFIC)}, {_stamp(dialect_name)} {_FROM} "
            f"{_in(ph, n)}")


def chunks(pks: Sequence[K]) -> Iterator[tuple[K, ...]]:
    """``pks`` (or account ids) in statements of at most ``CHUNK``, each
    padded to a power of two by repeating its last one."""
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
    """The view's fields, by name, from one whole row (its texts left out)."""
    return {name: (p(v) if p is not None and v is not None else v)
            for name, p, v in zip(FIELDS, procs, row[:len(FIELDS)], strict=True)}


def convert_traffic(values: Sequence[Any], procs: Sequence[Converter]) -> dict[str, Any]:
    """The ``TRAFFIC`` fields, by name, from their values in that order
    (``procs``: ``traffic_converters``)."""
    return {name: (p(v) if p is not None and v is not None else v)
            for name, p, v in zip(TRAFFIC, procs, values, strict=True)}


def traffic_converters(procs: Sequence[Converter]) -> tuple[Converter, ...]:
    """Of a view's converters, those of the ``TRAFFIC`` fields, in their order."""
    return tuple(procs[FIELDS.index(name)] for name in TRAFFIC)
