"""The central dashboard with its real parts: nagios4 on a generated configuration,
Debian's Nagios CGIs behind lighttpd (`vigil monitor web`), rrdtool graphs fed by
Nagios' perfdata file (`vigil monitor perfdata`), mails composed by `vigil monitor
notify` and caught by a loopback SMTP server, and a headless Debian chromium
looking at the pages as the NOC does.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from monitor import graphs
from monitor.sites import parse as parse_sites
from monitor.testing import FAST, CentralNagios, Dashboard, Spec, chromium, write_conf
from vigil.testing.ports import free_port
from vigil.testing.smtp import SMTPSink
from vigil.testing.wait import poll, wait_until

pytestmark = pytest.mark.e2e  # nagios4, its CGIs behind lighttpd, headless chromium

VIGIL = str(Path(sys.executable).parent / "vigil")
SITES = """
[site site-a]
vigil-a1 = primary
[site site-b]
vigil-b1 = secondary
"""
USER, PASSWORD = "noc", "dash-Board-7"
CHECKS = [Spec("radius_auth", "RADIUS authentication", ("/bin/true",), 60, 5, "radius"),
          Spec("load", "Load", ("/bin/true",), 60, 5, "system")]


@dataclass
class Central:
    nagios: CentralNagios
    web: Dashboard
    rrd_dir: Path
    tmp: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web.port}"

    def browse(self, path: str) -> str:
        return chromium(self.tmp, f"http://{USER}:{PASSWORD}@127.0.0.1:{self.web.port}{path}")

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, auth=(USER, PASSWORD), timeout=30)

    def submit(self, line: str) -> None:
        with open(self.nagios.command_file, "w") as fh:
            fh.write(line + "\n")


@pytest.fixture
def central(tmp_path: Path, smtp: SMTPSink) -> Iterator[Central]:
    port = free_port()
    nagios_dir = tmp_path / "nagios"
    web_dir = tmp_path / "web"
    conf = write_conf(tmp_path / "central.conf", {
        "Site": {"Role": "central", "Name": "central", "Host_Name": "vigil-central",
                 "State_Dir": tmp_path / "state"},
        "Global": {"last_resort_email": "admin@example.com",
                   "email_header_from": "nagios@example.com"},
        "Email": {"SMTP_Host": "127.0.0.1", "SMTP_Port": smtp.port, "SMTP_Timeout_sec": 5},
        "Monitor": {"Nagios_Dir": nagios_dir, "Web_Dir": web_dir, "Web_Port": port,
                    "Web_User": USER, "Web_Password": PASSWORD},
    })
    nagios = CentralNagios(nagios_dir, parse_sites(SITES), CHECKS,
                           notify_command=f"{VIGIL} -c {conf} alert send --no-rate-limit",
                           runbook_url=f"http://127.0.0.1:{port}/runbooks",
                           vigil_command=[VIGIL, "-c", str(conf)],
                           graph_url="/graphs/graph.cgi", perfdata_interval_sec=1,
                           # as `vigil monitor nagios` sets it up (cwd of Nagios is not ours)
                           perfdata_store=[sys.executable, "-m", "monitor.graphs",
                                           "--rrd-dir", str(web_dir / "rrd")],
                           timing=FAST)
    with nagios, Dashboard(VIGIL, conf, port, tmp_path / "web.log") as web:
        yield Central(nagios, web, web_dir / "rrd", tmp_path)


def feed_hour(c: Central, host: str, service: str, values: list[float]) -> int:
    """A result a minute for the last len(values) minutes, the last one now."""
    now = int(time.time())
    for i, v in enumerate(values):
        ts = now - 60 * (len(values) - 1 - i)
        c.submit(f"[{ts}] PROCESS_SERVICE_CHECK_RESULT;{host};{service};0;"
                 f"OK - rtt {v} s | rtt={v}s;0.5;2;0;")
    return now


def keep_fresh(c: Central) -> None:
    now = int(time.time())
    for host, site in (("vigil-a1", "site-a"), ("vigil-b1", "site-b")):
        c.submit(f"[{now}] PROCESS_HOST_CHECK_RESULT;{host};0;OK - alive")
        c.submit(f"[{now}] PROCESS_HOST_CHECK_RESULT;{site};0;OK - heartbeat")
        c.submit(f"[{now}] PROCESS_SERVICE_CHECK_RESULT;{site};site-heartbeat;0;OK")
        c.submit(f"[{now}] PROCESS_SERVICE_CHECK_RESULT;{host};Load;0;OK | load1=0.5")


def test_status_pages_show_hosts_by_site_and_services_by_subsystem(central: Central) -> None:
    keep_fresh(central)
    central.nagios.wait_status(lambda s: s.service("vigil-a1", "Load") is not None
                               and s.service("vigil-a1", "Load").get("has_been_checked") == "1",
                               20)
    assert requests.get(central.url + "/", timeout=10).status_code == 401  # login required

    sites = central.browse("/cgi-bin/nagios4/status.cgi?hostgroup=all&style=overview")
    a, b = sites.find("Site site-a"), sites.find("Site site-b")
    assert 0 <= a < b, sites[:3000]  # one block per site, in name order
    assert "vigil-a1" in sites[a:b] and "vigil-b1" not in sites[a:b]
    assert "vigil-b1" in sites[b:] and "vigil-a1" not in sites[b:]

    subsystems = central.browse("/cgi-bin/nagios4/status.cgi?servicegroup=all&style=overview")
    for group in ("Subsystem radius", "Subsystem system", "Subsystem site"):
        assert group in subsystems, group

    landing = central.browse("/")
    assert "Hosts by site" in landing and "Services by subsystem" in landing
    home = requests.get(central.url + "/nagios4/", auth=(USER, PASSWORD), timeout=10,
                        allow_redirects=False)
    assert home.status_code in (301, 302) and home.headers["Location"].endswith("/")


def test_runbook_link_opens_its_section(central: Central) -> None:
    keep_fresh(central)
    detail = central.browse("/cgi-bin/nagios4/extinfo.cgi?type=2&host=vigil-a1"
                            "&service=RADIUS+authentication")
    links = set(re.findall(r'href="(http://127\.0\.0\.1:\d+/runbooks/[^"]+)"', detail))
    want = f"{central.url}/runbooks/checks.html#check-radius_auth"
    assert want in links, detail[:4000]
    page = chromium(central.tmp, want.replace("http://", f"http://{USER}:{PASSWORD}@"))
    anchor = page.find('id="check-radius_auth"')
    assert anchor >= 0
    # the section that follows the anchor is radius_auth's, and says what to do
    assert "radius_auth: RADIUS authentication round trip" in page[anchor:anchor + 600]
    host_page = central.browse("/cgi-bin/nagios4/extinfo.cgi?type=1&host=vigil-a1")
    assert f"{central.url}/runbooks/monitor.html#host-down" in host_page
    monitor_page = central.get("/runbooks/monitor.html").text
    assert 'id="host-down"' in monitor_page and 'id="site-down"' in monitor_page


def test_a_service_graph_with_data_renders(central: Central) -> None:
    keep_fresh(central)
    values = [round(0.01 + 0.001 * i, 4) for i in range(60)]
    feed_hour(central, "vigil-a1", "RADIUS authentication", values)
    rrd = graphs.rrd_path(central.rrd_dir, "vigil-a1", "RADIUS authentication", "rtt")
    assert poll(rrd.exists, 30, 0.2), "Nagios' perfdata never reached the RRD files"

    def last_is_stored() -> bool:
        out = subprocess.run(["rrdtool", "lastupdate", str(rrd)], capture_output=True,
                             text=True, check=False).stdout
        last = out.strip().splitlines()[-1] if out.strip() else ""
        try:
            return abs(float(last.split(":")[1]) - values[-1]) < 1e-9
        except (IndexError, ValueError):
            return False

    assert wait_until(last_is_stored, 30, 0.5)
    fetched = subprocess.run(["rrdtool", "fetch", str(rrd), "AVERAGE", "--start", "-3600"],
                             capture_output=True, text=True, check=True).stdout
    numbers = [ln for ln in fetched.splitlines() if ":" in ln and "nan" not in ln.lower()]
    assert len(numbers) >= 50, fetched  # an hour of minutes, a few lost to step alignment

    # the service's action_url on the status page leads to its graphs page
    detail = central.browse("/cgi-bin/nagios4/status.cgi?host=vigil-a1")
    actions = re.findall(r"href=['\"](/graphs/graph\.cgi\?[^'\"]+)['\"]", detail)
    target = next(a for a in actions if "RADIUS" in a)
    page = central.browse(target.replace("&amp;", "&").replace(" ", "%20"))
    imgs = re.findall(r"<img class=\"graph\"[^>]*src=\"([^\"]+)\"", page)
    assert len(imgs) == 4, page  # 4 hours, day, week, month
    png = central.get(imgs[0].replace("&amp;", "&"))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert len(png.content) > 5000  # axes, a line and the legend, not an empty frame
    shot = central.tmp / "graph.png"
    chromium(central.tmp, f"http://{USER}:{PASSWORD}@127.0.0.1:{central.web.port}{target}"
             .replace(" ", "%20"), screenshot=shot)
    assert shot.exists() and shot.stat().st_size > 10000


def test_acknowledgement_carries_the_user_and_is_mailed(central: Central,
                                                        smtp: SMTPSink) -> None:
    keep_fresh(central)
    now = int(time.time())
    central.submit(f"[{now}] PROCESS_SERVICE_CHECK_RESULT;vigil-a1;RADIUS authentication;2;"
                   "RADIUS_AUTH CRITICAL: no answer | rtt=0s")
    central.nagios.wait_status(lambda s: (s.service("vigil-a1", "RADIUS authentication") or {})
                               .get("current_state") == "2", 20)
    smtp.wait_for(1, 30)
    problem = next(m for m in smtp.messages if m["Subject"].startswith("PROBLEM"))
    body = problem.get_content()
    assert "Since: " in body and "ago)" in body
    assert "checks.html#check-radius_auth" in body and "First step: " in body

    smtp.clear()
    # As a browser does: the form first (it sets cmd.cgi's CSRF cookie and hidden id).
    web = requests.Session()
    web.auth = (USER, PASSWORD)
    cmd = central.url + "/cgi-bin/nagios4/cmd.cgi"
    form = web.get(cmd, params={"cmd_typ": "34", "host": "vigil-a1",
                                "service": "RADIUS authentication"}, timeout=30).text
    hidden = dict(re.findall(r"<input type='hidden' name='(\w+)' value='([^']*)'", form, re.I))
    reply = web.post(cmd, data={**hidden, "cmd_typ": "34", "cmd_mod": "2", "host": "vigil-a1",
                                "service": "RADIUS authentication",
                                "com_author": "someone else", "com_data": "looking at it",
                                "sticky_ack": "on", "send_notification": "on",
                                "btnSubmit": "Commit"}, timeout=30)
    assert reply.status_code == 200 and "successfully submitted" in reply.text, reply.text[-800:]
    st = central.nagios.wait_status(
        lambda s: (s.service("vigil-a1", "RADIUS authentication") or {})
        .get("problem_has_been_acknowledged") == "1", 20)
    assert st.service("vigil-a1", "RADIUS authentication") is not None
    comments = central.nagios.status_file.read_text()
    assert re.search(r"servicecomment \{[^}]*author=noc[^}]*comment_data=looking at it",
                     comments), comments[-2000:]
    smtp.wait_for(1, 30)
    ack = next(m for m in smtp.messages if m["Subject"].startswith("ACKNOWLEDGEMENT"))
    text = ack.get_content()
    assert "Acknowledged by: noc" in text and "Comment: looking at it" in text, text
