"""Engines on one billing database tell each other (and `vigil status`)
that they are alive: one row per engine process, refreshed every few
seconds by its chores thread. Times are the database's (billing/db_clock.py),
so a server whose wall clock is off neither hides its engines nor shows
stale ones as alive."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from billing import models as m
from billing.db import DatabaseError
from billing.db_clock import database_time
from vigil.clock import utcnow


@dataclass
class Heartbeat:
    db: Engine
    listen: str
    counters: Callable[[], dict[str, int]]
    name: str = ""
    clock: Callable[[], dt.datetime] = utcnow  # the engine's billing time in service

    def __post_init__(self) -> None:
        self.host = socket.gethostname()[:64]
        self.name = self.name or f"{self.host}:{os.getpid()}"
        self.started_at = self.clock()

    def beat(self) -> None:
        c = self.counters()
        values: dict[str, Any] = dict(
            host=self.host, pid=os.getpid(), listen=self.listen[:64],
            started_at=self.started_at, seen_at=self.clock(),
            requests=c.get("access_requests", 0) + c.get("accounting_requests", 0),
            accepts=c.get("access_accepts", 0), accountings=c.get("accounting_responses", 0),
            db_errors=c.get("db_errors", 0))
        try:
            with self.db.begin() as conn:
                hit = conn.execute(update(m.EngineHeartbeat).where(
                    m.EngineHeartbeat.name == self.name).values(**values)).rowcount
                if not hit:
                    conn.execute(insert(m.EngineHeartbeat).values(name=self.name, **values))
        except SQLAlchemyError as exc:
            raise DatabaseError(f"heartbeat not written: {exc}") from exc

    def leave(self) -> None:
        """A clean stop removes the row (a killed engine's ages out)."""
        try:
            with self.db.begin() as conn:
                conn.execute(delete(m.EngineHeartbeat).where(
                    m.EngineHeartbeat.name == self.name))
        except SQLAlchemyError:
            pass


def engines(db: Engine, within: float = 60.0) -> list[dict[str, Any]]:
    """Engines seen in the last ``within`` seconds (the database's), on any server."""
    since = database_time(db) - dt.timedelta(seconds=within)
    with db.connect() as conn:
        rows = conn.execute(select(m.EngineHeartbeat.__table__).where(
            m.EngineHeartbeat.seen_at >= since).order_by(m.EngineHeartbeat.host,
                                                         m.EngineHeartbeat.pid)).all()
    return [dict(r._mapping) for r in rows]
