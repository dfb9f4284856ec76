"""The test house: tiers, the session's servers, and what a missing program means.

Tiers (pyproject's markers): every test is exactly one of
- ``unit``: pure, no process, socket or server; the whole tier runs in
  seconds (``make test-fast``). Assigned to every test not marked otherwise,
  and *checked*: a unit test that starts a process or opens a network socket
  fails, naming the tier it belongs to.
- ``integration``: a real server or process. Assigned to tests that use a
  server fixture (below) or are marked so (``pytestmark`` in their module).
- ``e2e``: whole scenarios, marked in their module.

Integration tests use the real things, never a mock of them (the design's
rule "Real parts, not mocks"; README.md, `make test`, lists them; the rooms
and what each may import are in docs/architecture.md): the throw-away MariaDB
below is started once per session, the loopback SMTP server once per test. Every
process a test starts ends with the run, however the run ends
(vigil.testing.session and vigil.testing.reaper).

A Debian program that is not installed makes the tests that need it skip with
the package to install, not error (vigil.testing.binaries, applied by
vigil.testing.session).
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import NoReturn

import pytest

from vigil.testing.mariadb import MariaDB
from vigil.testing.smtp import SMTPSink

_db_counter = itertools.count(1)
TIERS = ("unit", "integration", "e2e")
# fixtures that start a real server or process: a test using one is integration
SERVER_FIXTURES = frozenset({
    "mariadb", "mariadb_database", "smtp", "sandbox", "freeradius", "real_nsca",
    "vigil_server", "pair",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marked = {m.name for m in item.iter_markers() if m.name in TIERS}
        if "e2e" in marked:
            tier = "e2e"
        elif "integration" in marked or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            tier = "integration"
        else:
            tier = "unit"
        if tier not in marked:
            item.add_marker(getattr(pytest.mark, tier))


class NotAUnitTest(AssertionError):
    """A test in the unit tier did something only integration tests may do."""


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise NotAUnitTest(f"a unit test {what}: mark it integration (pytestmark) "
                           "or use a server fixture")
    return refuse


@pytest.fixture(autouse=True)
def _unit_tier_is_pure(request: pytest.FixtureRequest,
                       monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Unit tests start no process and open no network socket (socketpair stays allowed)."""
    closest = [m.name for m in request.node.iter_markers() if m.name in TIERS]
    if closest[:1] == ["unit"]:
        monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse("started a process"))
        for method in ("bind", "connect", "connect_ex", "sendto"):
            monkeypatch.setattr(socket.socket, method, _refuse(f"used a socket ({method})"))
        for name in ("fork", "system", "posix_spawn", "posix_spawnp"):
            monkeypatch.setattr(os, name, _refuse(f"started a process (os.{name})"))
    yield


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
