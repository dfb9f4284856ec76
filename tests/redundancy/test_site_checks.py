"""The site check plugins as Nagios runs them (real subprocesses)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vigil import site_mode as modes
from vigil import statefile

pytestmark = pytest.mark.integration  # the site check plugins run as programs

VIGIL_CHECK = str(Path(sys.executable).with_name("vigil-check"))


def run(name: str, conf: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL")}
    p = subprocess.run([VIGIL_CHECK, name, *args, "--config", str(conf)], text=True,
                       capture_output=True, timeout=60, env=env)
    return p.returncode, p.stdout.strip() + p.stderr.strip()


def conf_for(tmp_path: Path) -> Path:
    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[Site]\nRole=secondary\nName=site-b\nState_Dir={tmp_path}\n"
                    f"[Standby]\nPrimary_URL=sqlite:///{tmp_path / 'primary.db'}\n"
                    f"[Delta]\nURL=sqlite:///{tmp_path / 'delta.db'}\n")
    return conf


def test_site_mode(tmp_path):
    conf = conf_for(tmp_path)
    rc, out = run("site_mode", conf)
    assert rc == 0 and "stand-by" in out, out
    modes.write(tmp_path / modes.FILE_NAME, modes.STANDALONE, "primary gone", "watchdog")
    rc, out = run("site_mode", conf)
    assert rc == 2 and "STAND-ALONE" in out and "primary gone" in out, out
    (tmp_path / modes.FILE_NAME).write_text("{not json")
    rc, out = run("site_mode", conf)
    assert rc == 3 and "not valid JSON" in out, out


def test_site_probes(tmp_path):
    conf = conf_for(tmp_path)
    rc, out = run("site_probes", conf)
    assert rc == 2 and "has not run" in out, out
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    alive = {"verdict": "alive", "detail": "ok"}
    state = tmp_path / "site-watchdog.json"
    statefile.write_json(state, {"updated_at": now, "summary": "primary seen by db",
                                 "paths": {"db": alive, "replication": alive}})
    rc, out = run("site_probes", conf)
    assert rc == 0 and "2/2 paths see the primary" in out, out
    statefile.write_json(state, {"updated_at": now, "summary": "x", "paths": {
        "db": {"verdict": "dead", "detail": "refused"}, "replication": alive}})
    rc, out = run("site_probes", conf)
    assert rc == 1 and "db (refused)" in out, out
    old = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)).isoformat()
    statefile.write_json(state, {"updated_at": old, "summary": "x",
                                 "paths": {"db": alive, "replication": alive}})
    rc, out = run("site_probes", conf)
    assert rc == 2 and "watchdog silent" in out, out


def test_site_backlog(tmp_path):
    from billing.db import engine_for_url
    from tests.redundancy.failback_data import seed_delta, seed_primary

    conf = conf_for(tmp_path)
    primary = engine_for_url(f"sqlite:///{tmp_path / 'primary.db'}")
    delta = engine_for_url(f"sqlite:///{tmp_path / 'delta.db'}")
    seed_primary(primary, 5)
    seed_delta(delta, 30, 5)
    rc, out = run("site_backlog", conf)
    assert rc == 1 and "30 xDR(s) pending" in out, out
    p = subprocess.run([sys.executable, "-m", "vigil.cli", "-c", str(conf), "site", "failback"],
                       text=True, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rc, out = run("site_backlog", conf)
    assert rc == 0 and "0 xDR(s) pending" in out, out
    primary.dispose()
    delta.dispose()


@pytest.mark.parametrize("role", ["primary", "all", "central"])
def test_site_checks_say_not_configured_where_no_secondary_runs(tmp_path, role):
    """The all-in-one demo and the primary run the catalog's secondary checks
    too (role all) or may be given them: OK "not configured", never a page
    about a watchdog that is not meant to run there."""
    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[Site]\nRole={role}\nName=site-a\nState_Dir={tmp_path}\n"
                    "[Standby]\nPrimary_URL=mysql+pymysql://nobody@primary-db.invalid/billing\n")
    for name in ("site_mode", "site_probes", "site_backlog"):
        rc, out = run(name, conf)
        assert rc == 0 and "not configured" in out and f"Role is {role}" in out, (name, out)
