"""Calls over a window from account_xdrs: the shared query of the ASR and ACD plugins."""

from __future__ import annotations

from dataclasses import dataclass

from checks.db import connect, timed, utc_since
from checks.plugin import Context


@dataclass(frozen=True)
class CallStats:
    calls: int
    connected: int
    mean_duration: float  # seconds, over connected calls


def call_stats(ctx: Context, window: float) -> CallStats:
    # A connected call has a duration; a failed attempt is an xDR of 0 seconds.
    sql = ("SELECT COUNT(*), SUM(CASE WHEN duration > 0 THEN 1 ELSE 0 END), "
           "AVG(CASE WHEN duration > 0 THEN duration END) "
           "FROM account_xdrs WHERE created_at >= :since")
    with connect(ctx) as conn:
        rows, _ = timed(conn, sql, {"since": utc_since(window)})
    calls, connected, mean = rows[0]
    return CallStats(int(calls or 0), int(connected or 0), float(mean or 0.0))
