"""Two sites in network namespaces: cutting the link to the primary makes
site B charge calls by itself; 30% loss on the link with a healthy primary
flips nothing."""

from __future__ import annotations

import pytest

from tests.redundancy.site_watch_rig import rig
from vigil.testing import netns

pytestmark = [
    pytest.mark.e2e,  # two sites in network namespaces, links cut and made lossy
    pytest.mark.skipif(netns.available() is not None, reason=str(netns.available())),
]


def test_link_cut_then_standalone(tmp_path):
    with rig(tmp_path, subnet=52) as r:
        assert r.flips_during(3) == 0 and not r.standalone()
        answered, _io = r.time_to(r.site_a.cut, timeout=60)
        assert answered is not None, r.err.read_text()[-2000:]
        print(f"link cut -> first call answered by site B: {answered:.1f} s")
        assert r.standalone()


def test_lossy_link_flips_nothing(tmp_path):
    with rig(tmp_path, subnet=53) as r:
        r.site_a.loss(30)
        # CI-sized: 40 probe rounds at 30% loss (bench: --soak 600)
        assert r.flips_during(40) == 0, r.err.read_text()[-2000:]
        assert not r.answered()


def test_one_path_cut_flips_nothing(tmp_path):
    with rig(tmp_path, subnet=54) as r:
        # the direct DB probe (a new connection each round) is cut; the
        # stand-by's replication connection is not: it vetoes
        r.site_a.refuse_new()
        assert r.flips_during(30) == 0, r.err.read_text()[-2000:]
        import json

        paths = json.loads((r.b.state / "site-watchdog.json").read_text())["paths"]
        assert paths["db"]["verdict"] == "dead" and paths["replication"]["verdict"] == "alive"
