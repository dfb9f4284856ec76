"""PyMySQL connections that share one TLS context per process.

PyMySQL 1.2 tries TLS on every connection whose settings name none
(PREFERRED: plain when the server offers no TLS), and builds a new
``ssl.create_default_context()`` for each one: the system's CA bundle read
and parsed again, 20-30 ms of CPU with the GIL held on this machine (10
connections: 197 ms of CPU, now 26), for a context that verifies nothing
(no CA given, so no certificate check). An engine opens its pool's
connections at start and again after the database comes back, and each of
them stopped the packet loop for that long (a probe thread in the engine
woke 8-16 ms late while the look-up workers and the committer connected).
Here the context is built once and shared; what is negotiated with the
server does not change. Connections given TLS settings of their own still
get a context of their own, as PyMySQL builds it.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import pymysql.connections

_lock = threading.Lock()
_preferred: ssl.SSLContext | None = None


class Connection(pymysql.connections.Connection):
    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        global _preferred
        if sslp:
            ctx: ssl.SSLContext = super()._create_ssl_ctx(sslp)  # type: ignore[misc]
            return ctx
        with _lock:
            if _preferred is None:
                _preferred = super()._create_ssl_ctx({})  # type: ignore[misc]
            return _preferred


def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Connection:
    """SQLAlchemy's ``do_connect`` event: the connection made here."""
    return Connection(*cargs, **cparams)
