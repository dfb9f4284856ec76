"""The generated central Nagios configuration: real nagios4 -v; objects read back by pynag."""

from __future__ import annotations

import gc
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest

from monitor.nagios_config import GenerateError, NagiosSettings, generate
from monitor.settings import Timing, timing
from monitor.sites import parse as parse_sites
from monitor.testing import Spec
from vigil.config import ConfigError, load

SITES = """
[site site-a]
vigil-primary = primary 127.0.0.1
vigil-db2 = primary
[site site-b]
vigil-secondary = secondary
[site central]
vigil-central = central
"""
PROD = Timing(180, 150, 120, 15, 0, 60, 2, 60)
CHECKS = [
    Spec("disk", "Disk /", ("vigil-check", "disk"), 60, 10, "system"),
    Spec("load", "Load", ("vigil-check", "load"), 60, 10, "system"),
    Spec("radius_auth", "RADIUS auth", ("vigil-check", "radius_auth"), 60, 10, "radius"),
    Spec("binlog_disk", "Binlog disk", ("vigil-check", "binlog_disk"), 300, 30, "database"),
]


def settings(out: Path, **kw: Any) -> NagiosSettings:
    base: dict[str, Any] = dict(out_dir=out, timing=PROD, on_call=["oncall@example.com",
                                                                  "noc@example.com"],
                                notify_command="/opt/vigil/bin/vigil -c /etc/vigil.conf alert "
                                               "send --no-rate-limit",
                                runbook_url="https://vigil.example.com/runbooks",
                                nagios_user="root", nagios_group="root")
    base.update(kw)
    return NagiosSettings(**base)


def read_back(main_cfg: Path) -> dict[str, list[dict[str, str]]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynag leaves files open
        from pynag.Parsers import config

        c = config(cfg_file=str(main_cfg))
        c.parse()
        data = {k[4:]: [{a: v for a, v in o.items() if a != "meta"} for o in objs]
                for k, objs in c.data.items()}
        del c
        gc.collect()
    return data


@pytest.fixture
def generated(tmp_path: Path) -> tuple[Path, dict[str, list[dict[str, str]]]]:
    g = generate(parse_sites(SITES), CHECKS, settings(tmp_path / "nagios"))
    assert (g.sites, g.hosts, g.services) == (3, 7, 4 * 4 + 3)
    return g.main_cfg, read_back(g.main_cfg)


@pytest.mark.integration
def test_real_nagios_accepts_it_without_a_warning(generated) -> None:  # type: ignore[no-untyped-def]
    main_cfg, _ = generated
    proc = subprocess.run(["/usr/sbin/nagios4", "-v", str(main_cfg)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert "Total Warnings: 0" in proc.stdout and "Total Errors:   0" in proc.stdout
    assert "Checked 19 services." in proc.stdout and "Checked 7 hosts." in proc.stdout


def test_services_are_passive_with_freshness_and_runbooks(generated) -> None:  # type: ignore[no-untyped-def]
    _, objs = generated
    services = [s for s in objs["service"] if s.get("register") != "0"]
    assert len(services) == 19
    for s in services:
        assert (s["active_checks_enabled"], s["passive_checks_enabled"],
                s["check_freshness"]) == ("0", "1", "1")
        assert s["contact_groups"] == "oncall"
    disk = next(s for s in services if s["host_name"] == "vigil-db2"
                and s["service_description"] == "Disk /")
    assert disk["freshness_threshold"] == "180"
    assert disk["check_command"] == "vigil-service-stale!180"
    assert disk["notes_url"] == "https://vigil.example.com/runbooks/checks.html#check-disk"
    assert disk["servicegroups"] == "system"
    # A check run every five minutes gets three of its intervals, not three minutes.
    binlog = next(s for s in services if s["service_description"] == "Binlog disk")
    assert binlog["freshness_threshold"] == "900"
    stale = next(c for c in objs["command"] if c["command_name"] == "vigil-service-stale")
    assert stale["command_line"] == '/bin/echo "CRITICAL - no data for $ARG1$ s" && exit 2'


@pytest.mark.integration
def test_stale_command_really_says_critical() -> None:
    line = '/bin/echo "CRITICAL - no data for 180 s" && exit 2'
    proc = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (2, "CRITICAL - no data for 180 s\n")


def test_groups_per_site_and_per_subsystem(generated) -> None:  # type: ignore[no-untyped-def]
    _, objs = generated
    assert sorted(g["hostgroup_name"] for g in objs["hostgroup"]) == ["central", "site-a",
                                                                     "site-b"]
    assert sorted(g["servicegroup_name"] for g in objs["servicegroup"]) == [
        "database", "radius", "site", "system"]
    hosts = {h["host_name"]: h for h in objs["host"] if h.get("register") != "0"}
    assert hosts["vigil-db2"]["hostgroups"] == "site-a"
    assert hosts["vigil-db2"]["parents"] == "site-a"
    assert hosts["vigil-db2"]["freshness_threshold"] == "150"
    assert hosts["vigil-db2"]["notification_options"] == "d,r"
    assert hosts["site-a"]["freshness_threshold"] == "120"
    assert hosts["site-a"]["check_command"] == "vigil-site-stale!120"
    assert hosts["site-a"]["notes_url"] == "https://vigil.example.com/runbooks/monitor.html#site-down"
    assert hosts["vigil-primary"]["address"] == "127.0.0.1"


def test_on_call_contacts_page_through_vigil_alert(generated) -> None:  # type: ignore[no-untyped-def]
    _, objs = generated
    contacts = {c["contact_name"]: c for c in objs["contact"] if c.get("register") != "0"}
    assert {c["email"] for c in contacts.values()} == {"oncall@example.com", "noc@example.com"}
    group = objs["contactgroup"][0]
    assert group["contactgroup_name"] == "oncall"
    assert sorted(group["members"].split(",")) == sorted(contacts)
    cmd = next(c for c in objs["command"] if c["command_name"] == "notify-service-by-vigil")
    assert ("| /opt/vigil/bin/vigil -c /etc/vigil.conf alert send --no-rate-limit --subject "
            '"$NOTIFICATIONTYPE$: $HOSTNAME$/$SERVICEDESC$ is $SERVICESTATE$" '
            '--to "$CONTACTEMAIL$"') in cmd["command_line"]
    assert all(c["service_notification_commands"] == "notify-service-by-vigil"
               for c in contacts.values())


def test_main_config_keeps_everything_in_its_folder(generated) -> None:  # type: ignore[no-untyped-def]
    main_cfg, _ = generated
    kv = dict(line.split("=", 1) for line in main_cfg.read_text().splitlines()
              if "=" in line and not line.startswith("#"))
    root = str(main_cfg.parent)
    for key in ("command_file", "query_socket", "status_file", "temp_path", "lock_file",
                "check_result_path", "log_file", "state_retention_file"):
        assert kv[key].startswith(root), key
    assert (kv["nagios_user"], kv["nagios_group"]) == ("root", "root")
    assert kv["service_freshness_check_interval"] == "15"
    assert kv["additional_freshness_latency"] == "0"
    assert kv["check_service_freshness"] == kv["check_host_freshness"] == "1"


def test_roles_limit_checks_when_a_check_names_them(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class RoleSpec(Spec):
        roles: tuple[str, ...] = ()

    checks = [RoleSpec("disk", "Disk /", ("x",)),
              RoleSpec("radius_auth", "RADIUS auth", ("x",), roles=("primary", "secondary"))]
    g = generate(parse_sites(SITES), checks, settings(tmp_path / "n"))
    objs = read_back(g.main_cfg)
    central = [s["service_description"] for s in objs["service"]
               if s.get("host_name") == "vigil-central"]
    assert central == ["Disk /"]


@pytest.mark.parametrize("checks,message", [
    ([], "the checks file lists no checks"),
    ([CHECKS[0], CHECKS[0]], "check disk is listed twice"),
    ([CHECKS[0], Spec("disk2", "Disk /", ("x",))],
     "host vigil-primary: checks disk and disk2 have the same service description 'Disk /'"),
    ([Spec("bad", "semi;colon", ("x",))], "cannot hold newlines or ';'"),
])
def test_bad_checks_are_refused(tmp_path: Path, checks: list[Spec], message: str) -> None:
    with pytest.raises(GenerateError) as exc:
        generate(parse_sites(SITES), checks, settings(tmp_path / "n"))
    assert message in str(exc.value)
    assert not (tmp_path / "n" / "nagios.cfg").exists()


def test_no_on_call_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GenerateError, match="no on-call e-mail address"):
        generate(parse_sites(SITES), CHECKS, settings(tmp_path / "n", on_call=[]))


def test_regenerating_replaces_old_objects(tmp_path: Path) -> None:
    out = tmp_path / "n"
    generate(parse_sites(SITES), CHECKS, settings(out))
    generate(parse_sites("[site solo]\nvigil-x = all\n"), CHECKS[:1], settings(out))
    assert sorted(p.name for p in (out / "objects").iterdir()) == [
        "commands.cfg", "contacts.cfg", "servicegroups.cfg", "site-solo.cfg", "templates.cfg"]


@pytest.mark.parametrize("env,option,why", [
    ({"HOST_FRESHNESS_THRESHOLD_SEC": "170"}, "Host_Freshness_Threshold_sec",
     "170 must be at most Freshness_Threshold_sec - Freshness_Check_Interval_sec = 165"),
    ({"SITE_FRESHNESS_THRESHOLD_SEC": "140"}, "Site_Freshness_Threshold_sec",
     "140 must be at most Host_Freshness_Threshold_sec - Freshness_Check_Interval_sec = 135"),
    ({"FRESHNESS_THRESHOLD_SEC": "three minutes"}, "Freshness_Threshold_sec",
     "'three minutes' is not a whole number"),
    ({"ON_CALL_EMAIL": "oncall"}, "On_Call_Email", "not a fully qualified e-mail address"),
    ({"NAGIOS_USER": "root;rm"}, "Nagios_User", "is not a user or group name"),
    ({"TRANSPORT": "carrier-pigeon"}, "Transport", "is not one of: vigil, send_nsca"),
])
def test_bad_monitor_options_are_named(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                       option: str, why: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(f"VIGIL__MONITOR__{k}", v)
    with pytest.raises(ConfigError) as exc:
        timing(load(Path(__file__).resolve().parents[2] / "etc" / "vigil.conf"))
    assert f"[Monitor] {option}: " in str(exc.value) and why in str(exc.value)
    assert exc.value.exit_code == 2


def test_shipped_monitor_options_are_consistent() -> None:
    t = timing(load(Path(__file__).resolve().parents[2] / "etc" / "vigil.conf"))
    assert (t.service_sec, t.host_sec, t.site_sec) == (180, 150, 120)


@pytest.mark.integration
def test_central_with_graphs_and_mail_composer(tmp_path: Path) -> None:
    s = settings(tmp_path / "nagios", vigil_command=["/opt/vigil/bin/vigil", "-c", "/etc/v.conf"],
                 graph_url="/graphs/graph.cgi", perfdata_interval_sec=15,
                 perfdata_store=["/opt/vigil/bin/python", "-m", "monitor.graphs", "--rrd-dir",
                                 "/var/lib/vigil/web/rrd"])
    g = generate(parse_sites(SITES), CHECKS, s)
    proc = subprocess.run(["/usr/sbin/nagios4", "-v", str(g.main_cfg)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "Total Warnings: 0" in proc.stdout, proc.stdout
    kv = dict(line.split("=", 1) for line in g.main_cfg.read_text().splitlines()
              if "=" in line and not line.startswith("#"))
    assert kv["process_performance_data"] == "1"
    assert kv["service_perfdata_file"].startswith(str(tmp_path / "nagios"))
    assert kv["service_perfdata_file_template"] == \
        "$LASTSERVICECHECK$\\t$HOSTNAME$\\t$SERVICEDESC$\\t$SERVICEPERFDATA$"
    assert kv["service_perfdata_file_processing_interval"] == "15"
    assert kv["enable_environment_macros"] == "1"
    objs = read_back(g.main_cfg)
    cmds = {c["command_name"]: c["command_line"] for c in objs["command"]}
    assert cmds["vigil-process-perfdata"] == (
        "/opt/vigil/bin/python -m monitor.graphs --rrd-dir /var/lib/vigil/web/rrd --file "
        + kv["service_perfdata_file"])
    assert cmds["notify-service-by-vigil"] == (
        "/opt/vigil/bin/vigil -c /etc/v.conf monitor notify service -- /opt/vigil/bin/vigil "
        "-c /etc/vigil.conf alert send --no-rate-limit")
    services = [x for x in objs["service"] if x.get("register") != "0"]
    auth = next(x for x in services if x["service_description"] == "RADIUS auth")
    assert auth["action_url"] == "/graphs/graph.cgi?host=$HOSTNAME$&service=$SERVICEDESC$"
    assert auth["notes"].startswith("Check ") and ";" not in auth["notes"]
    hosts = {h["host_name"]: h for h in objs["host"] if h.get("register") != "0"}
    assert hosts["site-b"]["notes"].startswith("Is the configuration server receiving")
    assert hosts["vigil-db2"]["notes_url"] == \
        "https://vigil.example.com/runbooks/monitor.html#host-down"
