"""A real FreeRADIUS (Debian's) with a throw-away raddb on free loopback ports.

The reference peer of the tests and benchmarks: the `files` module answers
from a users file the caller writes, accounting is acknowledged by `ok`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_RADIUSD_CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = {d}
modconfdir = {d}
run_dir = {d}
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/radiusd.pid
max_request_time = 30
cleanup_delay = {cleanup_delay}
max_requests = 65536
hostname_lookups = no
log {{
  destination = stdout
}}
security {{
  allow_core_dumps = no
  reject_delay = 0
}}
thread pool {{
  start_servers = {threads}
  max_servers = {max_threads}
  min_spare_servers = 1
  max_spare_servers = {max_threads}
  max_queue_size = 65536
}}
client local {{
  ipaddr = 127.0.0.1
  secret = {secret}
}}
modules {{
  files {{
    filename = {d}/users
  }}
  pap {{
  }}
  always ok {{
    rcode = ok
  }}
{sql_module}}}
server default {{
  listen {{
    type = auth
    ipaddr = 127.0.0.1
    port = {auth}
  }}
  listen {{
    type = acct
    ipaddr = 127.0.0.1
    port = {acct}
  }}
  authorize {{
    {authorize}
    pap
  }}
  authenticate {{
    Auth-Type PAP {{
      pap
    }}
  }}
  preacct {{
    {preacct}
  }}
  accounting {{
    {accounting}
  }}
}}
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SQL_MODULE = """\
  expr {{
  }}
  sql {{
    driver = "rlm_sql_mysql"
    dialect = "mysql"
    server = "127.0.0.1"
    port = {port}
    login = "{user}"
    password = ""
    radius_db = "{database}"
    acct_table1 = "radacct"
    acct_table2 = "radacct"
    postauth_table = "radpostauth"
    authcheck_table = "radcheck"
    groupcheck_table = "radgroupcheck"
    authreply_table = "radreply"
    groupreply_table = "radgroupreply"
    usergroup_table = "radusergroup"
    client_table = "nas"
    read_groups = no
    read_clients = no
    delete_stale_sessions = no
    group_attribute = "SQL-Group"
    pool {{
      start = {connections}
      min = {connections}
      max = {connections}
      spare = {connections}
      uses = 0
      lifetime = 0
      idle_timeout = 0
    }}
    $INCLUDE /etc/freeradius/3.0/mods-config/sql/main/mysql/queries.conf
  }}
"""

# rlm_sql keys accounting rows by Acct-Unique-Session-Id, which the stock
# policy computes; this minimal raddb has no policies, so it is set here.
_UNIQUE_ID = ('update request {{ Acct-Unique-Session-Id := '
              '"%{{md5:%{{User-Name}},%{{Acct-Session-Id}},%{{NAS-IP-Address}}}}" }}')


@dataclass(frozen=True)
class SqlBackend:
    """Where FreeRADIUS's rlm_sql finds its MariaDB (its own schema, loaded by the caller)."""

    port: int
    database: str
    user: str = "root"
    connections: int = 8


@dataclass
class FreeRadius:
    dir: Path
    auth_port: int
    acct_port: int
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> FreeRadius:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_raddb(folder: Path, secret: str, users: str, auth_port: int, acct_port: int,
                threads: int = 2, max_threads: int = 4, cleanup_delay: int = 0,
                sql: SqlBackend | None = None) -> None:
    """A minimal raddb in ``folder``: the secret stays in a mode-0600 file.
    With ``sql``, users come from rlm_sql's radcheck and every accounting
    record is stored in radacct before it is answered."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "radiusd.conf"
    sql_module = _SQL_MODULE.format(port=sql.port, user=sql.user, database=sql.database,
                                    connections=sql.connections) if sql else ""
    conf.write_text(_RADIUSD_CONF.format(
        d=folder, secret=secret, auth=auth_port, acct=acct_port, threads=threads,
        max_threads=max_threads, cleanup_delay=cleanup_delay, sql_module=sql_module,
        authorize="sql" if sql else "files",
        preacct=_UNIQUE_ID.replace("{{", "{").replace("}}", "}") if sql else "",
        accounting="sql" if sql else "ok"))
    conf.chmod(0o600)
    (folder / "users").write_text(users)
    (folder / "dictionary").write_text("")


def start_freeradius(secret: str, users: str, threads: int = 2, max_threads: int = 4,
                     cpu: int | None = None, cleanup_delay: int = 0,
                     prefix: str = "vigil-freeradius-",
                     sql: SqlBackend | None = None) -> FreeRadius:
    """Start FreeRADIUS; ``users`` is the text of its users file.

    The shared secret goes into a mode-0600 radiusd.conf, never onto the
    command line. ``cpu`` pins it to one core (benchmarks).
    """
    binary = shutil.which("freeradius") or shutil.which("radiusd")
    if binary is None:
        raise FileNotFoundError("freeradius is not installed (make setup)")
    d = Path(tempfile.mkdtemp(prefix=prefix))
    auth, acct = _free_udp_port(), _free_udp_port()
    write_raddb(d, secret, users, auth, acct, threads, max_threads, cleanup_delay, sql)
    argv = [binary, "-f", "-d", str(d), "-l", "stdout"]
    if cpu is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", str(cpu), *argv]
    with open(d / "radiusd.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 15
    while b"Ready to process requests" not in (d / "radiusd.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("freeradius did not start:\n"
                               + (d / "radiusd.log").read_text(errors="replace")[-2000:])
        time.sleep(0.05)
    return FreeRadius(d, auth, acct, proc)
