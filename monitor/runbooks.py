"""The runbooks (docs/*.md) as HTML pages, and where each Nagios object's runbook is.

Rendered once at setup (``vigil monitor web``) with python-markdown and its
``toc`` extension, so every heading gets an ``id`` and ``#site-down`` scrolls
to its section in a browser; the explicit ``<a id="check-NAME">`` anchors of
docs/checks.md pass through unchanged. A raw ``.md`` served over http neither
renders nor scrolls to an anchor, and a ``file://`` link is refused by
browsers and names a path a NOC workstation does not have: hence HTML.

:func:`link` is the one place a runbook address is made (services, hosts,
sites and mails all use it), from ``[Monitor] Runbook_URL``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title} - Vigil runbooks</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 1em auto; padding: 0 1em;
        line-height: 1.45; }}
code, pre {{ background: #f3f3f3; }} pre {{ padding: .5em; overflow-x: auto; }}
:target {{ background: #fff4c0; }}
nav {{ font-size: small; }}
</style></head>
<body><nav><a href="index.html">Runbooks</a> | <a href="/">Dashboard</a></nav>
{body}
</body></html>
"""

# docs link to each other as `other.md#anchor`; served, they are `other.html#anchor`.
_MD_LINK = re.compile(r'href="(?![a-z]+:)([^"#]+)\.md(#[^"]*)?"')
_STEP_VERBS = ("Check", "Look", "Run", "Compare", "Restart", "Reach", "See", "Read", "Find",
               "Free", "Fix", "Start", "Stop", "Reduce", "Raise", "Make", "Ask")


@dataclass(frozen=True)
class Page:
    name: str  # checks, monitor, ... (the .md file's stem)
    title: str
    html_path: Path


def page_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def render_markdown(text: str) -> str:
    """One document's HTML body (headings carry ids; .md links point at .html)."""
    md = markdown.Markdown(extensions=["toc", "tables", "fenced_code"],
                           extension_configs={"toc": {"permalink": False}})
    body = md.convert(text)
    return _MD_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)


def render(docs_dir: Path, out_dir: Path) -> list[Page]:
    """Render every ``docs_dir/*.md`` into ``out_dir/<name>.html`` plus an index page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = []
    for src in sorted(docs_dir.glob("*.md")):
        text = src.read_text(encoding="utf-8")
        title = page_title(text, src.stem)
        dst = out_dir / f"{src.stem}.html"
        tmp = dst.with_suffix(".tmp")
        tmp.write_text(_PAGE.format(title=html.escape(title), body=render_markdown(text)),
                       encoding="utf-8")
        tmp.replace(dst)  # a browser never reads half a page
        pages.append(Page(src.stem, title, dst))
    items = "\n".join(f'<li><a href="{p.name}.html">{html.escape(p.title)}</a></li>'
                      for p in pages)
    (out_dir / "index.html").write_text(
        _PAGE.format(title="Runbooks", body=f"<h1>Runbooks</h1>\n<ul>\n{items}\n</ul>"),
        encoding="utf-8")
    return pages


def link(base: str, page: str, anchor: str) -> str:
    """The runbook address of ``page``'s section ``anchor`` under ``Runbook_URL``.

    An http(s) base serves the rendered HTML; a ``file:`` base (a checkout's docs/
    folder, no web server) links the Markdown files themselves.
    """
    ext = ".html" if base.startswith(("http://", "https://")) else ".md"
    return f"{base.rstrip('/')}/{page}{ext}#{anchor}"


# ------------------------------------------------------------- first steps
def _sections(text: str) -> dict[str, str]:
    """Anchor -> the section text below it (explicit <a id> anchors and heading slugs)."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    current: list[str] = []
    names: list[str] = []
    pending: list[str] = []
    for line in lines:
        m = re.match(r'<a id="([^"]+)"></a>\s*$', line.strip())
        if m:
            pending.append(m.group(1))
            continue
        h = re.match(r"(#{2,4})\s+(.*)$", line)
        if h:
            for n in names:
                out[n] = "\n".join(current).strip()
            names = pending + [_slug(h.group(2))]
            pending, current = [], []
            continue
        current.append(line)
    for n in names:
        out[n] = "\n".join(current).strip()
    return out


def _slug(heading: str) -> str:
    from markdown.extensions.toc import slugify

    return str(slugify(heading, "-"))


def _plain(text: str) -> str:
    text = re.sub(r"\*\*|`", "", text)
    return re.sub(r"\s+", " ", text).strip()


def first_step(section: str) -> str:
    """What to do first, from a runbook section: its first numbered step, else the first
    sentence that starts with an imperative verb, else what CRITICAL means, else its
    first sentence."""
    m = re.search(r"^1\.\s+(.*?)(?=^\d+\.\s|^\s*$)", section + "\n\n", re.M | re.S)
    if m:
        return _sentence(_plain(m.group(1)))
    flat = _plain(section)
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", flat)
    for s in sentences:
        if s.split(" ", 1)[0] in _STEP_VERBS:
            return _sentence(s)
    for s in sentences:  # else what CRITICAL means, which names what to look at
        if "CRITICAL" in s.split(":", 1)[0]:
            return _sentence(s)
    return _sentence(sentences[0]) if sentences else ""


def _sentence(text: str, limit: int = 240) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    return cut[:cut.rfind(" ")] + " ..."


def first_steps(docs_dir: Path, page: str) -> dict[str, str]:
    """Anchor -> first step, for every section of ``docs_dir/<page>.md`` (empty if none)."""
    src = docs_dir / f"{page}.md"
    if not src.exists():
        return {}
    return {name: first_step(body)
            for name, body in _sections(src.read_text(encoding="utf-8")).items() if body}
