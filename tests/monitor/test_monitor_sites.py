"""The sites file: sites, hosts, roles; every mistake named with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.sites import Host, SitesFileError, load, parse

GOOD = """
# two sites
[site site-a]
vigil-primary = primary 10.0.1.10
vigil-db2 = primary
[site site-b]
vigil-secondary = Secondary ::1
"""


def test_good_file() -> None:
    sites = parse(GOOD, "sites.conf")
    assert [s.name for s in sites] == ["site-a", "site-b"]
    assert sites[0].hosts == (Host("vigil-primary", "primary", "10.0.1.10", "site-a"),
                              Host("vigil-db2", "primary", "vigil-db2", "site-a"))
    assert sites[1].hosts[0].role == "secondary" and sites[1].hosts[0].address == "::1"


@pytest.mark.parametrize("name", ["sites.conf", "sites.vagrant.conf"])
def test_shipped_files_are_valid(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "etc" / name
    sites = load(path)
    assert sites and all(s.hosts for s in sites)


@pytest.mark.parametrize("text,message", [
    ("", "sites.conf: no [site NAME] sections"),
    ("[sites]\nh = primary\n", "sites.conf: [sites]: sections are [site NAME]"),
    ("[site a b]\nh = primary\n", "site name 'a b' must be"),
    ("[site a]\n", "sites.conf: [site a]: a site needs at least one host"),
    ("[site a]\nh = master\n", "sites.conf: [site a] h: 'master' is not '<role> [address]' "
                               "with role one of primary, secondary, central, all"),
    ("[site a]\nh =\n", "sites.conf: [site a] h: '' is not '<role> [address]'"),
    ("[site a]\nh = primary 1.2.3.4 extra\n", "is not '<role> [address]'"),
    ("[site a]\nh = primary bad/addr\n", "address 'bad/addr' must be"),
    ("[site a]\nh!x = primary\n", "host name 'h!x' must be"),
    ("[site a]\nh = primary\n[site b]\nh = secondary\n",
     "sites.conf: [site b] h: host h is already in site a"),
    ("[site a]\na = primary\n", "the site's name is also a host name"),
    ("[site a]\nh = primary\n[site a]\ng = primary\n", "not a valid sites file"),
    ("h = primary\n", "not a valid sites file"),
])
def test_bad_files_are_named(text: str, message: str) -> None:
    with pytest.raises(SitesFileError) as exc:
        parse(text, "sites.conf")
    assert message in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SitesFileError, match="cannot read the sites file"):
        load(tmp_path / "nope.conf")
