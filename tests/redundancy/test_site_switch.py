"""A switch persists the mode, runs the hook (VIGIL_SITE_MODE) and e-mails
on-call; the mode file survives restarts and a corrupt one is never trusted."""

from __future__ import annotations

import json
import subprocess
import sys

from billing.testing import ROOT
from vigil import site_mode as modes
from vigil import statefile


def vigil(conf, *args):
    return subprocess.run([sys.executable, "-m", "vigil.cli", "-c", str(conf), *args],
                          text=True, capture_output=True, cwd=ROOT, timeout=120)


def test_manual_standalone_runs_hook_and_alerts(tmp_path, smtp):
    hook_out = tmp_path / "hook.out"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$VIGIL_SITE_MODE $VIGIL_SITE_NAME\" >> {hook_out}\n")
    hook.chmod(0o755)
    conf = tmp_path / "vigil.conf"
    conf.write_text(
        f"[Site]\nRole=secondary\nName=site-b\nState_Dir={tmp_path / 'state'}\n"
        f"Log_Dir={tmp_path}\n[Log]\nLog_To=File\nLog_Dest={tmp_path / 'billing.log'}\n"
        f"[Global]\nlast_resort_email=oncall@example.com\n"
        f"[Email]\nSMTP_Host=127.0.0.1\nSMTP_Port={smtp.port}\nSMTP_Timeout_sec=2\n"
        f"[Standby]\nPrimary_URL=sqlite:///{tmp_path / 'primary.db'}\n"
        f"[Delta]\nURL=sqlite:///{tmp_path / 'delta.db'}\n"
        f"[Watchdog]\nHook={hook}\n")
    r = vigil(conf, "site", "standalone", "--reason", "ZDU of site A", "--dry-run")
    assert r.returncode == 0 and "would switch" in r.stdout
    assert not (tmp_path / "state" / modes.FILE_NAME).exists()
    r = vigil(conf, "site", "standalone", "--reason", "ZDU of site A")
    assert r.returncode == 0, r.stderr
    m = modes.read(tmp_path / "state" / modes.FILE_NAME)
    assert m.standalone and m.by == "admin" and m.reason == "ZDU of site A"
    assert hook_out.read_text() == "standalone site-b\n"
    (mail,) = smtp.wait_for(1)
    assert "site-b is now STANDALONE" in mail["Subject"]
    assert "ZDU of site A" in mail.get_content()
    st = vigil(conf, "site", "status", "--json")
    assert st.returncode == 1  # stand-alone is not "healthy"
    data = json.loads(st.stdout)
    assert data["mode"] == "standalone" and data["backlog"]["pending_xdrs"] == 0
    # the file survives a restart of anything; a corrupt one is reported, not trusted
    (tmp_path / "state" / modes.FILE_NAME).write_text("{\"mode\": \"sideways\"}")
    w = modes.ModeWatcher(tmp_path / "state" / modes.FILE_NAME)
    assert not w.current().standalone and "unreadable" in w.current().reason
    st = vigil(conf, "site", "status")
    assert "UNKNOWN" in st.stdout and st.returncode == 1


def test_mode_writes_are_atomic_and_typed(tmp_path):
    path = tmp_path / modes.FILE_NAME
    assert modes.read(path).mode == modes.STANDBY  # no file: stand-by
    modes.write(path, modes.STANDALONE, "x", "watchdog")
    modes.write(path, modes.STANDBY, "failback", "failback")
    m = modes.read(path)
    assert m.mode == modes.STANDBY and m.last_failback == m.since
    assert statefile.read_json(path)["by"] == "failback"
    assert not list(tmp_path.glob(".site-mode.json.*"))  # no temp file left
