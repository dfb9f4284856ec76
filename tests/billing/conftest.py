"""Billing fixtures: every engine test runs on SQLite and on a real MariaDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from billing import schema
from billing.db import engine_for_url
from billing.testing import BillingSandbox


# integration both ways: the engine against a real database, SQLite's file or a MariaDB server
@pytest.fixture(params=[pytest.param("sqlite", marks=pytest.mark.integration),
                        pytest.param("mariadb", marks=pytest.mark.integration)])
def db_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.db'}"
    else:
        yield request.getfixturevalue("mariadb_database")


def _store_engine(url: str) -> Iterator[Engine]:
    # as the RADIUS engine has it: the committer's statements in one round
    # trip on MariaDB (billing/sql_pipeline.py)
    engine = engine_for_url(url, multi_statements=True)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(db_url) -> Iterator[Engine]:
    yield from _store_engine(db_url)


@pytest.fixture
def mariadb_db(mariadb_database) -> Iterator[Engine]:
    """``db`` on MariaDB only: for what only a server with row locks shows."""
    yield from _store_engine(mariadb_database)


@pytest.fixture
def sandbox(db_url, tmp_path) -> Iterator[BillingSandbox]:
    """The demo data in a real `vigil radiusd` process."""
    box = BillingSandbox(db_url, base=tmp_path / "engine")
    with box:
        yield box
