"""Runbook links in mails (vigil/runbooks.py): the same targets as the Nagios notes_url."""

from __future__ import annotations

from pathlib import Path

from vigil import config
from vigil.runbooks import DOCS, runbook_link


def load(tmp_path: Path, body: str) -> config.Config:
    p = tmp_path / "vigil.conf"
    p.write_text(body)
    return config.load(p)


def test_an_http_base_links_the_rendered_page(tmp_path: Path) -> None:
    cfg = load(tmp_path, "[Monitor]\nRunbook_URL=https://noc.example.com/runbooks/\n")
    assert runbook_link(cfg, "radcheck", "radcheck-outage") == \
        "https://noc.example.com/runbooks/radcheck.html#radcheck-outage"


def test_a_path_links_the_markdown_next_to_the_page_it_names(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    cfg = load(tmp_path, "[Monitor]\nRunbook_URL=docs/checks.md\n")
    assert runbook_link(cfg, "radcheck", "radcheck-outage") == \
        (tmp_path / "docs" / "radcheck.md").as_uri() + "#radcheck-outage"
    cfg = load(tmp_path, "[Monitor]\nRunbook_URL=docs\n")
    assert runbook_link(cfg, "radcheck", "x") == (tmp_path / "docs" / "radcheck.md").as_uri() + "#x"


def test_the_section_exists_in_the_shipped_runbook() -> None:
    assert '<a id="radcheck-outage"></a>' in (DOCS / "radcheck.md").read_text()
