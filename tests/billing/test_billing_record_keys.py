"""Record identities of any length, on SQLite and MariaDB: two Stops whose
conf-ids differ only after 200 characters (or only in case) are two
charges; a Stop for an unknown account is quarantined with its reason; a
record the database refuses is quarantined alone and its batch answered."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine as SAEngine

from billing import models as m
from billing.catalog import Catalog
from billing.db import engine_for_url
from billing.engine import Engine, EngineSettings
from billing.provision import apply_document, load_document
from billing.request import CallRequest
from billing.store import SqlStore
from billing.testing import BillingSandbox
from vigil.testing.radius_fuzz import fill_stop

ROOT = Path(__file__).resolve().parents[2]


def send_stop(box: BillingSandbox, conf: str, account: str = "193.100.201.1") -> bool:
    c = box.client("nextone", timeout=3, retries=2)
    req = fill_stop(c.acct_packet(), conf, "164.4.89.20", account, seconds=180)
    return c.send(req).code == 5  # Accounting-Response


def rows(url: str, *cols):
    e = engine_for_url(url)
    try:
        with e.connect() as conn:
            return conn.execute(select(*cols)).all()
    finally:
        e.dispose()


def test_stops_differing_after_200_characters_or_in_case_are_both_charged(sandbox):
    common = "conf-" + "7" * 200
    confs = [common + "-A" + "x" * 20, common + "-B" + "x" * 20, "case-conf", "CASE-CONF",
             "pad-conf", "pad-conf "]
    for conf in confs:
        assert send_stop(sandbox, conf)
    for conf in confs:  # retransmissions from a new port: duplicates, acknowledged
        assert send_stop(sandbox, conf)
    xdrs = rows(sandbox.db_url, m.AccountXDR.conf_id, m.AccountXDR.amount)
    assert len(xdrs) == len(confs)
    assert sum(Decimal(a) for _, a in xdrs) == Decimal("0.57") * len(confs)
    keys = rows(sandbox.db_url, m.ProcessedAccounting.session_key)
    assert len(keys) == len(confs) and all(len(k) <= 180 for (k,) in keys)


def test_a_stop_for_an_unknown_account_is_quarantined_with_its_reason(sandbox):
    assert send_stop(sandbox, "who-1", account="nobody-here")
    assert send_stop(sandbox, "who-1", account="nobody-here")  # once, however often sent
    q = rows(sandbox.db_url, m.QuarantinedAccounting.reason,
             m.QuarantinedAccounting.attributes)
    assert len(q) == 1 and "unknown account 'nobody-here'" in q[0][0]
    assert "who-1" in q[0][1]
    assert rows(sandbox.db_url, func.count(m.AccountXDR.id)) == [(0,)]


def stop(conf: str) -> CallRequest:
    return CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", called="59322891834",
                       calling="193.100.201.1", conf_id=conf, incoming_conf_id=conf,
                       call_origin="originate", remote_address="65.218.170.184",
                       status_type="Stop", session_id=conf, session_time="60",
                       ivr_out=["PortaBilling_UserName:193.100.201.1"])


@contextlib.contextmanager
def demo_engine(url: str, settings: EngineSettings) -> Iterator[tuple[SAEngine, Engine]]:
    """The engine in-process on the database at ``url``, with the demo's accounts and rates."""
    from billing import schema

    db = engine_for_url(url)
    try:
        schema.upgrade(db)
        apply_document(db, load_document(ROOT / "etc" / "demo" / "provision.yaml"))
        cat = Catalog(db)
        cat.load()
        yield db, Engine(SqlStore(db), cat, settings)
    finally:
        db.dispose()


def test_a_record_the_database_refuses_is_quarantined_alone_and_its_batch_stored(
        mariadb_database):
    with demo_engine(mariadb_database, EngineSettings()) as (db, eng):
        ops = [eng.accounting_op(stop(f"batch-{i}")) for i in range(20)]
        assert all(op.kind == "stop" and op.xdrs for op in ops)
        # A value MariaDB (strict mode) refuses: error 1406, data too long.
        ops[7].xdrs[0].rate_prefix = "9" * 100
        now = dt.datetime(2026, 11, 30, 12, 0)
        assert eng.store.apply(ops, now) == [True] * 20
        assert ops[7].kind == "quarantine" and "cannot be stored" in ops[7].quarantine_reason
        with db.connect() as c:
            assert c.execute(select(func.count(m.AccountXDR.id))).scalar_one() == 19
            q = c.execute(select(m.QuarantinedAccounting.session_key,
                                 m.QuarantinedAccounting.attributes)).all()
        assert len(q) == 1 and q[0][0] == ops[7].session_key and "batch-7" in q[0][1]
        # the same batch again: every record a duplicate, nothing charged twice
        again = [eng.accounting_op(stop(f"batch-{i}")) for i in range(20)]
        assert eng.store.apply(again, now) == [False] * 20


def test_an_authorization_with_long_ids_reserves_under_the_whole_call_key(db_url):
    from billing import record_key

    with demo_engine(db_url, EngineSettings(fraud_active=False)) as (db, eng):
        conf = "call-" + "9" * 300
        req = CallRequest(source_ip="127.0.0.1", nas_ip="164.4.89.20", user_name="x",
                          password="x", called="441259322891834", calling="193.100.201.1",
                          conf_id=conf, ivr_out=["PortaBilling_UserName:193.100.201.1",
                                                 "PortaBilling_Ignore_Password:YES",
                                                 "padding=" + "p" * 200])
        assert eng.authorize(req).accept
        with db.connect() as c:
            keys = c.execute(select(m.ActiveCall.conf_id)).scalars().all()
        assert keys == [record_key.call_key(conf)] and len(keys[0]) == 128
        # the Stop of that call ends it: the same key, not a cut one
        op = eng.accounting_op(stop(conf))
        assert eng.store.apply([op], dt.datetime.now()) == [True]
        with db.connect() as c:
            assert c.execute(select(func.count(m.ActiveCall.id))).scalar_one() == 0
