"""billing/pymysql_tls.py: one TLS context per process for PyMySQL's
opportunistic TLS, and the same TLS as before with it.

Real MariaDB servers: the tests' own (no TLS offered: plain connections,
as PyMySQL's PREFERRED mode falls back to) and one started here with a
self-signed certificate made by openssl (TLS negotiated on every
connection, through the one shared context)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from billing import pymysql_tls
from billing.db import engine_for_url
from vigil.testing.mariadb import MariaDB

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=vigil-test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    db = MariaDB("tls", server_id=101, log_bin=False,
                 extra_args=[f"--ssl-cert={cert}", f"--ssl-key={key}"])
    db.start()
    db.create_database("billing_tls")
    yield db
    db.destroy()


def contexts_and_ciphers(url: str, n: int = 3) -> tuple[list[object], list[str]]:
    """``n`` connections held at once (so the pool opens ``n``): the TLS
    context of each, and the cipher the server says each one uses."""
    engine = engine_for_url(url, pool_size=n)
    conns = [engine.connect() for _ in range(n)]
    try:
        raws = [c.connection.dbapi_connection for c in conns]
        assert all(isinstance(r, pymysql_tls.Connection) for r in raws)
        ciphers = [str(c.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).one()[1])
                   for c in conns]
        return [getattr(r, "ctx", None) for r in raws], ciphers
    finally:
        for c in conns:
            c.close()
        engine.dispose()


def test_connections_share_one_context_and_still_negotiate_tls(tls_mariadb: MariaDB) -> None:
    contexts, ciphers = contexts_and_ciphers(tls_mariadb.url("billing_tls"))
    assert contexts[0] is not None and all(c is contexts[0] for c in contexts)
    assert all(ciphers), f"a connection went without TLS: {ciphers}"


def test_a_server_without_tls_is_reached_in_the_clear(mariadb_database: str) -> None:
    _, ciphers = contexts_and_ciphers(mariadb_database, n=2)
    assert ciphers == ["", ""]


def test_explicit_tls_settings_get_a_context_of_their_own(tls_mariadb: MariaDB) -> None:
    shared, _ = contexts_and_ciphers(tls_mariadb.url("billing_tls"), n=1)
    own = pymysql_tls.Connection(host="127.0.0.1", port=tls_mariadb.port, user="root",
                                 ssl={"verify_mode": "none", "check_hostname": False})
    try:
        assert getattr(own, "ctx", None) not in (None, shared[0])
        with own.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = cur.fetchone()
        assert row is not None and row[1]
    finally:
        own.close()
