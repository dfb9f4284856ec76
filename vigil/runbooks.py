"""Links to the runbooks (``docs/<page>.md``, served as HTML by the dashboard) for mails.

Every alert mail carries the link to the section that says what to do, built
the way the Nagios ``notes_url`` links are: ``[Monitor] Runbook_URL`` when set
(an http address: ``<url>/<page>.html#<section>``; a path, relative to the
config file: the Markdown file itself), else the dashboard's
``<Web_URL>/runbooks/<page>.html#<section>``, else the Markdown file shipped
with the code. The options are read by name, so the core imports no room.
"""

from __future__ import annotations

from pathlib import Path

from vigil.config import Config

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _option(cfg: Config, section: str, name: str) -> str:
    try:
        return str(cfg.get(section, name) or "")
    except KeyError:  # the room that declares it is not installed
        return ""


def web_url(cfg: Config) -> str:
    """The dashboard's address as people reach it, or "" when there is none."""
    url = _option(cfg, "Monitor", "Web_URL")
    if url:
        return url.rstrip("/")
    address, port = _option(cfg, "Monitor", "Web_Address"), _option(cfg, "Monitor", "Web_Port")
    return f"http://{address}:{port}" if address and port else ""


def runbook_link(cfg: Config, page: str, section: str) -> str:
    """Where ``docs/<page>.md``'s ``<a id="section">`` can be read."""
    value = _option(cfg, "Monitor", "Runbook_URL")
    if "://" in value:
        return f"{value.rstrip('/')}/{page}.html#{section}"
    if value:
        base = Path(value)
        if not base.is_absolute() and not cfg.source.startswith("<"):
            base = Path(cfg.source).resolve().parent / base
        folder = base.parent if base.suffix == ".md" else base  # a page names its folder
        return f"{(folder.resolve() / f'{page}.md').as_uri()}#{section}"
    web = web_url(cfg)
    if web:
        return f"{web}/runbooks/{page}.html#{section}"
    return f"{(DOCS / f'{page}.md').as_uri()}#{section}"
