"""Stand-by and stand-alone on a real master + replica, through `radclient`.

The acceptance test is the source's worked example (Deploying ... Across
Multiple Sites): account 12345, balance $98.00, credit limit $100.00,
$0.10/min; in stand-alone the calls get 20 min, then 8 min, then $0.30
worth; after failback the primary shows $99.70 and the two xDRs once each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from billing.testing import ROOT
from tests.redundancy.site_rig import authorize_body, credit_time, radclient, stop_body, two_sites
from vigil import site_mode as modes

pytestmark = pytest.mark.e2e  # two sites: stand-by, stand-alone, failback


def vigil(box, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil.cli", "-c", str(box.config), *args],
                          text=True, capture_output=True, cwd=ROOT, timeout=120)


@pytest.fixture
def sites(tmp_path):
    with two_sites(tmp_path) as s:
        yield s


def test_worked_example_standby_standalone_failback(sites):
    b = sites.site_b()
    b.start()
    try:
        # stand-by: site B's RADIUS is silent for calls (radcheck still answered)
        out = radclient(b, "auth", authorize_body("call-0"), timeout=0.5)
        assert "Access-Accept" not in out and "Access-Reject" not in out, out
        assert "site in stand-by mode" in b.log_text()
        # ... while radcheck's self-test account is answered: not an outage
        assert b.selftest()

        # provisioning is refused on a secondary site, whatever its mode
        r = vigil(b, "provision", str(ROOT / "etc" / "demo" / "provision.yaml"))
        assert r.returncode == 1 and "STAND-BY" in r.stderr, r.stderr

        r = vigil(b, "site", "standalone", "--reason", "primary power outage")
        assert r.returncode == 0, r.stderr
        assert modes.read(b.state / modes.FILE_NAME).standalone

        # call 1: $98.00 of $100.00 -> 20 minutes; 12 minutes cost $1.20
        out = radclient(b, "auth", authorize_body("call-1"))
        assert "Access-Accept" in out and credit_time(out) == 1200, out
        out = radclient(b, "acct", stop_body("call-1", 720))
        assert "Accounting-Response" in out, out
        # call 2: effective balance $99.20 -> 8 minutes; 5 minutes cost $0.50
        out = radclient(b, "auth", authorize_body("call-2"))
        assert "Access-Accept" in out and credit_time(out) == 480, out
        out = radclient(b, "acct", stop_body("call-2", 300))
        assert "Accounting-Response" in out, out
        # a retransmitted Stop is acknowledged and not charged again
        out = radclient(b, "acct", stop_body("call-2", 300))
        assert "Accounting-Response" in out, out
        # call 3: only $0.30 left -> 3 minutes
        out = radclient(b, "auth", authorize_body("call-3"))
        assert "Access-Accept" in out and credit_time(out) == 180, out

        # the stand-by itself was not written: its balance is still $98.00
        assert sites.account(sites.standby_url) == (Decimal("98.00"), 0, Decimal(0))
        r = vigil(b, "provision", str(ROOT / "etc" / "demo" / "provision.yaml"))
        assert r.returncode == 1 and "STAND-ALONE" in r.stderr, r.stderr
        assert "failback" in r.stderr

        r = vigil(b, "site", "failback", "--dry-run")
        assert r.returncode == 0, r.stderr
        assert "would lock: 2 xDR(s)" in r.stdout and "total 1.70" in r.stdout, r.stdout
        assert sites.account(sites.primary_url) == (Decimal("98.00"), 0, Decimal(0))

        r = vigil(b, "site", "failback")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "transferred 2/2" in r.stdout
        assert not modes.read(b.state / modes.FILE_NAME).standalone
        assert sites.account(sites.primary_url) == (Decimal("99.70"), 2, Decimal("1.70"))
        # again: nothing more
        r = vigil(b, "site", "failback")
        assert r.returncode == 0, r.stderr
        assert sites.account(sites.primary_url) == (Decimal("99.70"), 2, Decimal("1.70"))

        # site B is silent again; the stand-by caught up with the primary
        out = radclient(b, "auth", authorize_body("call-4"), timeout=0.5)
        assert "Access-Accept" not in out, out
        sites.caught_up()
        assert sites.account(sites.standby_url) == (Decimal("99.70"), 2, Decimal("1.70"))
        st = json.loads(vigil(b, "site", "status", "--json").stdout)
        assert st["mode"] == "standby" and st["backlog"]["pending_xdrs"] == 0
        assert st["backlog"]["locked_total"] in ("0", "0.00000")
    finally:
        b.stop()

    # the primary's own engine: $0.30 left -> 3 minutes; a Stop charged in
    # stand-alone and retransmitted to the primary is not charged again
    a = sites.site_a()
    with a:
        out = radclient(a, "auth", authorize_body("call-5"))
        assert "Access-Accept" in out and credit_time(out) == 180, out
        out = radclient(a, "acct", stop_body("call-2", 300))
        assert "Accounting-Response" in out, out
    assert sites.account(sites.primary_url) == (Decimal("99.70"), 2, Decimal("1.70"))


def test_delta_unreachable_means_no_answer(sites):
    b = sites.site_b()
    b.start()
    try:
        modes.write(b.state / modes.FILE_NAME, modes.STANDALONE, "test", "admin")
        out = radclient(b, "auth", authorize_body("call-1"))
        assert "Access-Accept" in out
        # the delta database goes away (its server stays: the stand-by is needed)
        with sites.standby.connect() as c, c.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin=0")
            cur.execute("DROP DATABASE delta")
        out = radclient(b, "acct", stop_body("call-1", 60), timeout=0.5)
        assert "Accounting-Response" not in out, out
        out = radclient(b, "auth", authorize_body("call-2"), timeout=0.5)
        assert "Access-Accept" not in out and "Access-Reject" not in out, out
        assert "delta database" in b.log_text()
    finally:
        b.stop()
