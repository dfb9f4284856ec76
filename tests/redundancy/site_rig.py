"""Two sites on one machine: a real MariaDB master (site A's billing
database), a real replica of it (site B's stand-by) with the delta database
beside it, and `vigil radiusd` processes answering `radclient`.

The source's worked example is provisioned: customer ABC, account 12345,
balance $98.00, credit limit $100.00, US calls at $0.10/min.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from billing import models as m
from billing import schema
from billing.db import engine_for_url
from billing.provision import apply_document
from billing.testing import BillingSandbox
from vigil.testing.mariadb import MariaDB

ROOT = Path(__file__).resolve().parents[2]
REPL_PASSWORD = "repl-secret-11"
GTID_ARGS = ["--gtid-strict-mode=1", "--slave-net-timeout=5"]
SECRET = "gw-secret-11"
NAS = "10.231.0.10"

EXAMPLE = {
    "nodes": [{"name": "PortaSIP", "nas_ip": NAS, "radius_source_ip": "127.0.0.1",
               "radius_secret": SECRET}],
    "tariffs": [{"name": "US retail", "currency": "USD", "rates": [
        {"prefix": "1", "interval_first": 60, "interval_next": 60,
         "price_first": "0.10", "price_next": "0.10"}]}],
    "products": [{"name": "Residential", "currency": "USD",
                  "accessibility": [{"node": "PortaSIP", "tariff": "US retail"}]}],
    "customers": [{"name": "ABC", "currency": "USD", "balance": "0"}],
    "accounts": [{"account_id": "12345", "customer": "ABC", "product": "Residential",
                  "billing_model": "credit", "balance": "98.00", "credit_limit": "100.00",
                  "voip_password": "abc-phone"}],
}


def authorize_body(conf_id: str, called: str = "12125551234") -> str:
    return (f'NAS-IP-Address = {NAS}\nUser-Name = "12345"\nUser-Password = "abc-phone"\n'
            f'Called-Station-Id = "{called}"\nCalling-Station-Id = "12345"\n'
            f'h323-conf-id = "{conf_id}"\n')


def stop_body(conf_id: str, seconds: int, called: str = "12125551234") -> str:
    return (f'NAS-IP-Address = {NAS}\nUser-Name = "12345"\nCalled-Station-Id = "{called}"\n'
            f'Calling-Station-Id = "12345"\nAcct-Status-Type = Stop\n'
            f'h323-call-origin = "originate"\nh323-conf-id = "{conf_id}"\n'
            f'Acct-Session-Id = "{conf_id}"\nAcct-Session-Time = {seconds}\n')


def radclient(box: BillingSandbox, kind: str, body: str, timeout: float = 2.0,
              tries: int = 1) -> str:
    secret_file = box.base / "gw-secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    port = box.auth_port if kind == "auth" else box.acct_port
    done = subprocess.run(
        ["radclient", "-d", str(ROOT / "etc" / "radius"), "-x", "-r", str(tries),
         "-t", str(timeout), "-S", str(secret_file), f"127.0.0.1:{port}", kind],
        input=body, text=True, capture_output=True, timeout=60)
    return done.stdout + done.stderr


def credit_time(out: str) -> int | None:
    for line in out.splitlines():
        if "h323-credit-time" in line and "=" in line:
            return int(line.split("=")[-1].strip().strip('"'))
    return None


class NsMariaDB(MariaDB):
    """A MariaDB inside a network namespace (site A), reached on the veth address."""

    def __init__(self, site: Any, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.site = site
        self.host = site.inside

    def args(self) -> list[str]:
        # the namespace is the fence: listen on its loopback (admin) and its veth
        return self.site.prefix() + super().args() + ["--bind-address=0.0.0.0"]

    def _inside(self, sql: str) -> bool:
        done = subprocess.run(self.site.prefix() + [
            "mariadb", "--no-defaults", "-h127.0.0.1", f"-P{self.port}", "-uroot",
            "--connect-timeout=1", "-e", sql], capture_output=True, text=True, timeout=30)
        return done.returncode == 0

    def start(self, timeout: float = 60.0) -> NsMariaDB:
        self.init_datadir()
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd {self.name} exited: {self.error_log_tail()}")
            # root may log in from site B's side of the veth (10.231.x.2)
            if self._inside("CREATE USER IF NOT EXISTS 'root'@'10.231.%'; GRANT ALL ON *.* "
                            "TO 'root'@'10.231.%' WITH GRANT OPTION"):
                return self
            time.sleep(0.2)
        self.kill()  # a process keeps its namespace alive: never leave one behind
        raise TimeoutError(f"mariadbd {self.name} did not start in its namespace")

    def connect(self, database: str | None = None, user: str = "root", password: str = "",
                connect_timeout: float = 5, autocommit: bool = True) -> Any:
        import pymysql

        return pymysql.connect(host=self.host, port=self.port, user=user, password=password,
                               database=database, connect_timeout=connect_timeout,
                               autocommit=autocommit)

    def url(self, database: str, user: str = "root") -> str:
        return f"mysql+pymysql://{user}@{self.host}:{self.port}/{database}"


class Sites:
    def __init__(self, master: MariaDB, standby: MariaDB, base: Path) -> None:
        self.master = master
        self.standby = standby
        self.base = base
        self.master_host = getattr(master, "host", "127.0.0.1")
        self.primary_url = master.url("billing")
        self.standby_url = standby.url("billing")
        self.delta_url = standby.url("delta")

    def start_replication(self) -> None:
        self.standby.execute(
            "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER='repl', "
            "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
            (self.master_host, self.master.port, REPL_PASSWORD))
        self.standby.execute("START SLAVE")
        self.caught_up()

    def caught_up(self, timeout: float = 30) -> None:
        pos = self.master.execute("SELECT @@gtid_binlog_pos")[0][0]
        got = self.standby.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (pos, timeout))[0][0]
        assert got == 0, f"stand-by did not reach {pos}"

    def site_b(self, name: str = "site-b", extra: str = "") -> BillingSandbox:
        """Site B's `vigil radiusd` (not started) on the stand-by and the delta."""
        box = BillingSandbox(self.standby_url, base=self.base / name, provision=None,
                             extra=(f"[Standby]\nPrimary_URL={self.primary_url}\n"
                                    f"[Delta]\nURL={self.delta_url}\n" + extra))
        # BillingSandbox writes [Site] State_Dir; this is the secondary site
        text = box.config.read_text().replace(
            "[Site]\n", "[Site]\nRole=secondary\nName=site-b\n", 1)
        box.config.write_text(text)
        return box

    def site_a(self, name: str = "site-a", extra: str = "") -> BillingSandbox:
        """Site A's `vigil radiusd` on the master (schema and data already there)."""
        return BillingSandbox(self.primary_url, base=self.base / name, provision=None,
                              extra=extra)

    def account(self, url: str) -> tuple[Decimal, int, Decimal]:
        """(balance, number of xDRs, their total) of account 12345."""
        engine = engine_for_url(url)
        try:
            with engine.connect() as c:
                pk, bal = c.execute(select(m.Account.id, m.Account.balance).where(
                    m.Account.account_id == "12345")).one()
                n, total = c.execute(select(func.count(), func.coalesce(
                    func.sum(m.AccountXDR.amount), 0)).where(
                    m.AccountXDR.account_id == pk)).one()
        finally:
            engine.dispose()
        return Decimal(bal), int(n), Decimal(total)


@contextlib.contextmanager
def two_sites(base: Path, site_a: Any = None) -> Iterator[Sites]:
    """Master in site A (inside the namespace ``site_a`` when given), stand-by and
    delta here (site B)."""
    if shutil.which("radclient") is None:
        pytest.skip("radclient missing: run `make setup`")
    master: MariaDB = (NsMariaDB(site_a, "site-a-db", server_id=1, extra_args=GTID_ARGS)
                       if site_a is not None else
                       MariaDB("site-a-db", server_id=1, extra_args=GTID_ARGS))
    standby = MariaDB("site-b-standby", server_id=2, extra_args=GTID_ARGS + ["--read-only=1"])
    try:
        # inside the try: a server that fails to start is still stopped and removed
        master.start()
        standby.start()
        master.execute("CREATE USER 'repl'@'%%' IDENTIFIED BY %s", (REPL_PASSWORD,))
        master.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")
        master.execute("CREATE DATABASE billing")
        engine = engine_for_url(master.url("billing"))
        try:
            schema.upgrade(engine)
            apply_document(engine, EXAMPLE)
        finally:
            engine.dispose()
        sites = Sites(master, standby, base)
        sites.start_replication()
        with contextlib.closing(standby.connect()) as c, c.cursor() as cur:
            # the delta is not replicated anywhere and must not log GTIDs here
            cur.execute("SET SESSION sql_log_bin=0")
            cur.execute("CREATE DATABASE delta")
        yield sites
    finally:
        standby.destroy()
        master.destroy()
