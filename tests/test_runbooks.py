"""Runbook links (vigil/runbooks.py): radcheck's mails and Nagios' notes_url link the same page."""

from __future__ import annotations

from pathlib import Path

from vigil import config
from vigil.runbooks import runbook_base, runbook_link

DOCS = Path(__file__).resolve().parent.parent / "docs"


def load(tmp_path: Path, body: str) -> config.Config:
    p = tmp_path / "vigil.conf"
    p.write_text(body)
    return config.load(p)


def test_an_http_base_links_the_rendered_page(tmp_path: Path) -> None:
    cfg = load(tmp_path, "[Monitor]\nRunbook_URL=https://noc.example.com/runbooks/\n")
    assert runbook_link(cfg, "radcheck", "radcheck-outage") == \
        "https://noc.example.com/runbooks/radcheck.html#radcheck-outage"


def test_no_base_means_the_dashboard(tmp_path: Path) -> None:
    cfg = load(tmp_path, "[Monitor]\nWeb_Address=127.0.0.1\nWeb_Port=8123\n")
    assert runbook_link(cfg, "radcheck", "x") == "http://127.0.0.1:8123/runbooks/radcheck.html#x"
    cfg = load(tmp_path, "[Monitor]\nWeb_URL=https://noc.example.com/\n")
    assert runbook_base(cfg) == "https://noc.example.com/runbooks"


def test_a_folder_is_taken_from_the_config_files_folder(tmp_path: Path) -> None:
    cfg = load(tmp_path, "[Monitor]\nRunbook_URL=html\n")
    assert runbook_link(cfg, "radcheck", "x") == (tmp_path / "html").as_uri() + "/radcheck.html#x"


def test_the_section_exists_in_the_shipped_runbook() -> None:
    assert '<a id="radcheck-outage"></a>' in (DOCS / "radcheck.md").read_text()
