"""Logging set-up for entry points: one event per line.

Library code logs through ``logging.getLogger(__name__)``; only entry points
call :func:`setup`. Every line about a call carries its conference id
(``conf=...``), set for the duration of a request with :func:`call_context`,
as the source's billing log does, so ``grep conf=<id>`` shows one call.
"""

from __future__ import annotations

import contextvars
import logging
import logging.handlers
import sys
from pathlib import Path

_conf_id: contextvars.ContextVar[str] = contextvars.ContextVar("conf_id", default="-")

FORMAT = "%(asctime)s.%(msecs)03d %(name)s[%(process)d] %(levelname)s conf=%(conf_id)s %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"


class _CallContext:
    # A class, not @contextmanager: the engine enters one or two per
    # request, and the generator's machinery cost three times as much.
    __slots__ = ("_conf_id", "_token")

    def __init__(self, conf_id: str) -> None:
        self._conf_id = conf_id

    def __enter__(self) -> None:
        self._token = _conf_id.set(self._conf_id)

    def __exit__(self, *_: object) -> None:
        _conf_id.reset(self._token)


def call_context(conf_id: str | None) -> _CallContext:
    """The lines logged inside the ``with`` carry ``conf=<conf_id>``."""
    return _CallContext(conf_id or "-")


def set_call(conf_id: str | None) -> None:
    _conf_id.set(conf_id or "-")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.conf_id = _conf_id.get()
        return True


# Every control character (C0, DEL, C1 and the Unicode line and paragraph
# separators) as a visible escape: a conf-id or user name carrying "\n" or
# ESC must not forge a log line or drive the terminal that shows the log.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7f, 0xa0))}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
                 0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape(text: str) -> str:
    """``text`` with its control characters written as escapes."""
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    """One event is exactly one line: what the event says (message, its
    arguments, the conf-id) is escaped; a traceback's own newlines are
    folded into " | " so it stays readable on its one line."""

    def format(self, record: logging.LogRecord) -> str:
        record.conf_id = escape(str(getattr(record, "conf_id", None) or _conf_id.get()))
        msg, args = record.msg, record.args
        try:
            record.msg, record.args = escape(record.getMessage()), None
            line = super().format(record)
        finally:
            record.msg, record.args = msg, args
        return escape(line.replace("\r\n", " | ").replace("\n", " | "))


def setup(log_to: str = "Console", dest: str | None = None, level: str = "INFO",
          program: str = "vigil") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    handler: logging.Handler
    if log_to == "File" and dest:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        # WatchedFileHandler: logrotate may move the file under us.
        handler = logging.handlers.WatchedFileHandler(dest, encoding="utf-8")
    elif log_to == "Syslog":
        facility = "daemon"
        if dest and dest.startswith("syslog:"):
            parts = dest.split(":")
            if len(parts) > 1 and parts[1]:
                facility = parts[1]
        handler = logging.handlers.SysLogHandler(
            address="/dev/log" if Path("/dev/log").exists() else ("127.0.0.1", 514),
            facility=facility)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT, DATEFMT))
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.captureWarnings(True)


def setup_from_config(cfg: object, program: str, console: bool = False) -> None:
    """Configure from ``[Log]``; ``console`` forces stderr (foreground use)."""
    from vigil.config import Config

    assert isinstance(cfg, Config)
    log_to = "Console" if console else cfg.get("Log", "Log_To")
    setup(log_to, str(cfg.get("Log", "Log_Dest")), cfg.get("Log", "Level"), program)
