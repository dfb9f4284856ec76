"""The watchdog's probe paths: each gives a verdict (alive / dead / unknown)
and a detail line, within its own explicit timeouts, and never raises.

- ``db``: a direct connection to the primary master and ``SELECT 1`` (short
  connect and read timeouts: a hung server accepts but never answers).
- ``replication``: the stand-by's IO thread and the age of the replicated
  heartbeat row; unknown when the stand-by itself does not answer.
- ``radius``: the primary RADIUS answering the self-test account.
- ``witness``: ``vigil site witness`` on a third site, asked whether IT sees
  the primary; unknown when the witness cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
from sqlalchemy.engine import URL

from redundancy.site.decide import Verdict


@dataclass(frozen=True)
class PathResult:
    name: str
    verdict: Verdict
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"verdict": self.verdict, "detail": self.detail}


@dataclass(frozen=True)
class DbTarget:
    host: str
    port: int
    user: str
    password: str
    database: str | None = None

    @classmethod
    def from_url(cls, url: URL) -> DbTarget:
        return cls(url.host or "127.0.0.1", url.port or 3306, url.username or "root",
                   url.password or "", url.database)


def db_probe(t: DbTarget, connect_timeout: float, read_timeout: float) -> PathResult:
    try:
        conn = pymysql.connect(host=t.host, port=t.port, user=t.user, password=t.password,
                               connect_timeout=connect_timeout, read_timeout=read_timeout,
                               write_timeout=read_timeout)
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        if code in (1044, 1045, 1698):
            # it answered: alive, but the watchdog is misconfigured
            return PathResult("db", "alive", f"primary answers but refuses us: {exc.args[-1]}")
        return PathResult("db", "dead", f"cannot connect to {t.host}:{t.port}: "
                                        f"{exc.args[-1] if exc.args else exc}")
    except (OSError, pymysql.MySQLError) as exc:
        return PathResult("db", "dead", f"cannot connect to {t.host}:{t.port}: {exc}")
    try:
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    except (OSError, pymysql.MySQLError) as exc:
        return PathResult("db", "dead", f"{t.host}:{t.port} connected but did not answer "
                                        f"within {read_timeout:g} s: {exc}")
    return PathResult("db", "alive", f"{t.host}:{t.port} answers")


def replication_probe(standby: DbTarget, heartbeat_table: str, max_age: float,
                      timeout: float) -> PathResult:
    """The stand-by's view of the primary (a replica that still hears it vetoes)."""
    try:
        conn = pymysql.connect(host=standby.host, port=standby.port, user=standby.user,
                               password=standby.password, connect_timeout=timeout,
                               read_timeout=timeout, cursorclass=pymysql.cursors.DictCursor)
    except (OSError, pymysql.MySQLError) as exc:
        return PathResult("replication", "unknown", f"stand-by not reachable: {exc}")
    try:
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("SHOW SLAVE STATUS")
            st = cur.fetchone()
            if not st:
                return PathResult("replication", "unknown", "stand-by does not replicate")
            io = str(st.get("Slave_IO_Running") or "No")
            age = None
            with contextlib.suppress(pymysql.MySQLError):
                db, table = heartbeat_table.split(".")
                cur.execute(f"SELECT TIMESTAMPDIFF(MICROSECOND, MAX(ts), UTC_TIMESTAMP(6)) "
                            f"/ 1e6 AS age FROM `{db}`.`{table}`")
                row = cur.fetchone()
                age = float(row["age"]) if row and row["age"] is not None else None
    except (OSError, pymysql.MySQLError) as exc:
        return PathResult("replication", "unknown", f"stand-by did not answer: {exc}")
    err = st.get("Last_IO_Error") or ""
    hb = "no heartbeat" if age is None else f"heartbeat {age:.1f} s old"
    if io != "Yes":
        return PathResult("replication", "dead", f"IO thread {io}; {hb}; {err}"[:300])
    if age is not None and age > max_age:
        return PathResult("replication", "dead", f"IO thread Yes but {hb} (> {max_age:g} s)")
    return PathResult("replication", "alive", f"IO thread Yes; {hb}")


def radius_probe(host: str, port: int, secret: bytes, user: str, password: str,
                 nas_ip: str, timeout: float) -> PathResult:
    from radcheck.probe import SelfTest, probe

    r = probe(SelfTest(host, port, secret, nas_ip, user, password, timeout))
    if r.ok:
        return PathResult("radius", "alive", f"{host}:{port} accepts the self-test "
                                             f"({r.rtt_ms:.0f} ms)")
    if r.kind in ("reject", "garbage"):
        return PathResult("radius", "alive", f"{host}:{port} answers: {r.error}")
    return PathResult("radius", "dead", r.error or r.kind)


def witness_probe(host: str, port: int, timeout: float) -> PathResult:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while not data.endswith(b"\n") and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        sees = answer["sees_primary"]
        age = float(answer.get("age_sec", 0))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return PathResult("witness", "unknown", f"witness {host}:{port} not usable: {exc}")
    if age > 3 * max(timeout, 1):
        return PathResult("witness", "unknown", f"witness's own view is {age:.0f} s old")
    return PathResult("witness", "alive" if sees else "dead",
                      f"witness {host}:{port}: {answer.get('detail', '')}"[:300])


Probe = Callable[[], PathResult]


def run_all(probes: dict[str, Probe]) -> dict[str, PathResult]:
    """All paths at once (each bounded by its own timeouts)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(probes))) as pool:
        futures = {name: pool.submit(fn) for name, fn in probes.items()}
        out: dict[str, PathResult] = {}
        for name, fut in futures.items():
            try:
                out[name] = fut.result()
            except Exception as exc:  # a bug in a probe is 'cannot tell', never a crash
                out[name] = PathResult(name, "unknown", f"probe failed: {exc!r}")
        return out


def build(cfg: Any) -> dict[str, Probe]:
    """The configured paths."""
    from sqlalchemy.engine import make_url

    from billing.db import database_url
    from redundancy.site.failback import primary_url
    from redundancy.site.settings import split_host_port

    ct, rt = cfg.get("Watchdog", "Connect_Timeout_sec"), cfg.get("Watchdog", "Read_Timeout_sec")
    primary = DbTarget.from_url(make_url(primary_url(cfg)))
    standby = DbTarget.from_url(database_url(cfg))
    probes: dict[str, Probe] = {
        "db": lambda: db_probe(primary, ct, rt),
        "replication": lambda: replication_probe(
            standby, cfg.get("Replication", "Heartbeat_Table"),
            cfg.get("Watchdog", "Heartbeat_Max_Age_sec"), ct + rt),
    }
    if cfg.get("Watchdog", "Primary_Radius"):
        host, port = split_host_port(cfg.get("Watchdog", "Primary_Radius"))
        secret = cfg.get("Self Test", "Shared_Secret").reveal().encode()
        user, password = cfg.get("Self Test", "User-Name"), cfg.get("Self Test",
                                                                     "Password").reveal()
        nas = cfg.get("Self Test", "NAS-IP-Address")
        probes["radius"] = lambda: radius_probe(host, port, secret, user, password, nas, rt)
    if cfg.get("Watchdog", "Witness"):
        whost, wport = split_host_port(cfg.get("Watchdog", "Witness"))
        probes["witness"] = lambda: witness_probe(whost, wport, ct + rt)
    return probes
