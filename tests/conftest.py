"""Shared fixtures: throw-away MariaDB servers and a loopback SMTP server.

Integration tests use the real things (see DESIGN.md, "Real parts, not
mocks"); these fixtures start them once per session.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from vigil.testing.mariadb import MariaDB
from vigil.testing.smtp import SMTPSink

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """One MariaDB server for the session; tests take their own database in it."""
    db = MariaDB("session", server_id=100)
    db.start()
    yield db
    db.destroy()


@pytest.fixture
def mariadb_database(mariadb: MariaDB) -> Iterator[str]:
    """A fresh, empty database in the session server; its SQLAlchemy URL."""
    name = f"t{next(_db_counter)}"
    mariadb.create_database(name)
    yield mariadb.url(name)
    mariadb.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def smtp() -> Iterator[SMTPSink]:
    with SMTPSink() as sink:
        yield sink
