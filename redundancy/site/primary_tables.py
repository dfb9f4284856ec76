"""Tables failback keeps on the PRIMARY master (they replicate to the stand-by).

- ``site_watermarks``: per secondary site, the highest delta ``seq`` whose
  funds are locked (``locked_upto``) and whose xDR is transferred
  (``transferred_upto``). A batch moves ``transferred_upto`` in the same
  transaction as its xDRs, with a condition on the old value, so two
  failbacks (or a re-run after kill -9) can never both apply a batch.
- ``site_funds_locks``: per site and owner, the part of the delta's
  adjustments already applied to the balance whose xDRs have not been
  transferred yet. Locking applies the stand-alone adjustments to the
  balance at once (so the primary's engines, which read balances, can spend
  only what is left); each batch then inserts its xDRs and lowers the lock
  by their amounts, leaving the balance alone. When the transfer is done the
  locks are zero and each balance changed by exactly its xDRs' charges.

Because both tables replicate, the stand-alone store reads them from the
stand-by snapshot: effective balance = stand-by balance - own locks +
delta adjustments after ``transferred_upto``, exact at every step.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Numeric, String, Table
from sqlalchemy.engine import Engine

metadata = MetaData()
MONEY = Numeric(16, 5)

site_watermarks = Table(
    "site_watermarks", metadata,
    Column("site", String(64), primary_key=True),
    Column("locked_upto", BigInteger, nullable=False, default=0),
    Column("transferred_upto", BigInteger, nullable=False, default=0),
    Column("updated_at", DateTime, nullable=True),
)

site_funds_locks = Table(
    "site_funds_locks", metadata,
    Column("site", String(64), primary_key=True),
    Column("kind", String(8), primary_key=True),  # account | customer
    Column("owner_pk", Integer, primary_key=True, autoincrement=False),
    Column("amount", MONEY, nullable=False),
)


def create(engine: Engine) -> None:
    metadata.create_all(engine)
