"""Where the runbooks are read: the links of Nagios' ``notes_url`` and of every alert mail.

``docs/<page>.md`` is served as HTML by the dashboard; a link is
``<base>/<page>.html#<section>``, the base being ``[Monitor] Runbook_URL``
(an http address, or a folder relative to the config file), else the
dashboard's ``<Web_URL>/runbooks``. The options are read by name, so the core
imports no room; ``monitor.settings`` and radcheck's mails use these functions,
so a mail and the dashboard always link the same page.
"""

from __future__ import annotations

from pathlib import Path

from vigil.config import Config

SECTION = "Monitor"


def web_url(cfg: Config) -> str:
    """The dashboard's address as people reach it."""
    url: str = cfg.get(SECTION, "Web_URL")
    if url:
        return url.rstrip("/")
    return f"http://{cfg.get(SECTION, 'Web_Address')}:{cfg.get(SECTION, 'Web_Port')}"


def runbook_base(cfg: Config) -> str:
    """The base of every runbook link (see ``[Monitor] Runbook_URL``)."""
    value: str = cfg.get(SECTION, "Runbook_URL")
    if not value:
        return web_url(cfg) + "/runbooks"
    if "://" in value:
        return value.rstrip("/")
    base = Path(value)
    if not base.is_absolute() and not cfg.source.startswith("<"):
        base = Path(cfg.source).resolve().parent / base
    return base.resolve().as_uri()


def runbook_link(cfg: Config, page: str, section: str) -> str:
    """Where ``docs/<page>.md``'s ``<a id="section">`` is read."""
    return f"{runbook_base(cfg)}/{page}.html#{section}"
