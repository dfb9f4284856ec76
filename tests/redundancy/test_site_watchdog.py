"""The watchdog end to end on a real master + replica: kill -9 the primary
database, site B goes stand-alone by itself and charges calls; the primary
comes back, stays healthy for the hold time, and the watchdog fails back
(the primary then holds the stand-alone charges once)."""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal

import pytest

from billing.testing import ROOT
from tests.redundancy.site_rig import authorize_body, credit_time, radclient, stop_body, two_sites
from vigil import site_mode as modes

pytestmark = pytest.mark.e2e  # the watchdog flips a live two-site rig and fails back

WATCHDOG = ("[Watchdog]\nProbe_Interval_sec=1\nFailed_Probes=2\nConnect_Timeout_sec=1\n"
            "Read_Timeout_sec=1\nMin_Standalone_sec=1\nFailback_Healthy_sec=2\n"
            "Quiet_After_Failback_sec=5\n")


def poll(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def sites(tmp_path):
    with two_sites(tmp_path) as s:
        yield s


def test_watchdog_flips_on_dead_primary_and_fails_back(sites):
    b = sites.site_b(extra=WATCHDOG)
    b.start()
    err = b.base / "watchdog.stderr"
    with open(err, "w") as fh:
        dog = subprocess.Popen([sys.executable, "-m", "vigil.cli", "-c", str(b.config), "site",
                                "watchdog"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fh)
    mode_file = b.state / modes.FILE_NAME
    try:
        poll(lambda: (b.state / "site-watchdog.json").exists() or dog.poll() is not None,
                 20, "first probe round")
        assert dog.poll() is None, err.read_text()
        # a healthy primary for a few rounds: no flip at any moment
        end = time.monotonic() + 3
        while time.monotonic() < end:
            assert not modes.read(mode_file).standalone
            time.sleep(0.2)

        t0 = time.monotonic()
        sites.master.kill()
        out = poll(lambda: (lambda o: o if "Access-Accept" in o else None)(
            radclient(b, "auth", authorize_body("call-1"), timeout=0.5)), 30,
            "site B to answer in stand-alone")
        print(f"kill -9 of the primary DB -> first call answered by site B: "
              f"{time.monotonic() - t0:.1f} s")
        assert credit_time(out) == 1200
        m = modes.read(mode_file)
        assert m.standalone and m.by == "watchdog" and "paths agree" in m.reason
        assert "Accounting-Response" in radclient(b, "acct", stop_body("call-1", 720))

        sites.master.start()
        poll(lambda: not modes.read(mode_file).standalone, 60, "automatic failback")
        assert modes.read(mode_file).by == "failback"
        poll(lambda: sites.account(sites.primary_url)[1] == 1, 30, "the xDR on the primary")
        assert sites.account(sites.primary_url) == (Decimal("99.20"), 1, Decimal("1.20"))
        # and site B is silent again
        out = radclient(b, "auth", authorize_body("call-2"), timeout=0.5)
        assert "Access-Accept" not in out
    finally:
        dog.terminate()
        try:
            dog.wait(10)
        except subprocess.TimeoutExpired:
            dog.kill()
            dog.wait()
        b.stop()
    assert dog.returncode == 0, err.read_text()
