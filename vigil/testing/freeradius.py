"""A real FreeRADIUS (Debian's) with a throw-away raddb on free loopback ports.

The one FreeRADIUS harness of the project: the reference peer of the
benchmarks, the target of the RADIUS check plugins and radcheck's tests (run
by the test itself, or by supervisord through ``command``). The `files`
module answers from a users file the caller writes; accounting is
acknowledged by `ok`. Started by the harness, it dies with the process that
started it (vigil.testing.reaper).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vigil.testing.binaries import MissingBinary, need
from vigil.testing.ports import free_udp_port
from vigil.testing.reaper import die_with_parent

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
    {recv_buff}
  }}
  listen {{
    type = acct
    ipaddr = 127.0.0.1
    port = {acct}
    {recv_buff}
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


def freeradius_binary() -> str:
    """Debian names it freeradius, upstream radiusd."""
    try:
        return need("freeradius")
    except MissingBinary:
        return need("radiusd")


class FreeRadius:
    """One FreeRADIUS on a raddb written into ``folder`` (a new temp folder when None).

    ``users`` is the text of its users file. The shared secret goes into a
    mode-0600 radiusd.conf, never onto the command line. ``cpu`` pins it to
    one core (benchmarks). With ``sql``, users and accounting go through
    rlm_sql on that MariaDB (the reference of a server that stores every record).
    """

    def __init__(self, folder: Path | None = None, *, secret: str, users: str,
                 auth_port: int | None = None, acct_port: int | None = None,
                 threads: int = 2, max_threads: int = 4, cleanup_delay: int = 0,
                 cpu: int | None = None, prefix: str = "vigil-freeradius-",
                 sql: SqlBackend | None = None, recv_buff: int | None = None) -> None:
        self._own_dir = folder is None
        self.dir = Path(tempfile.mkdtemp(prefix=prefix)) if folder is None else folder
        self.secret = secret
        self.auth_port = auth_port or free_udp_port()
        self.acct_port = acct_port or free_udp_port()
        self.cpu = cpu
        self.log_file = self.dir / "radiusd.log"
        write_raddb(self.dir, secret, users, self.auth_port, self.acct_port, threads,
                    max_threads, cleanup_delay, sql, recv_buff)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        """The authentication port (what a RADIUS client calls "the port")."""
        return self.auth_port

    @property
    def command(self) -> list[str]:
        """The command line, in the foreground, logging to stdout (supervisord runs this)."""
        argv = [freeradius_binary(), "-f", "-d", str(self.dir), "-l", "stdout"]
        if self.cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(self.cpu), *argv]
        return argv

    def start(self, timeout: float = 15.0) -> FreeRadius:
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while b"Ready to process requests" not in self.log_file.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("freeradius did not start:\n"
                                   + self.log_file.read_text(errors="replace")[-2000:])
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a test may have frozen it (SIGSTOP)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> FreeRadius:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_raddb(folder: Path, secret: str, users: str, auth_port: int, acct_port: int,
                threads: int = 2, max_threads: int = 4, cleanup_delay: int = 0,
                sql: SqlBackend | None = None, recv_buff: int | None = None) -> None:
    """A minimal raddb in ``folder``: the secret stays in a mode-0600 file.
    With ``sql``, users come from rlm_sql's radcheck and every accounting
    record is stored in radacct before it is answered. ``recv_buff``: the
    listening sockets' receive buffer in bytes (the kernel's default when
    None, about 200 KB: a few hundred requests at once overflow it)."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "radiusd.conf"
    sql_module = _SQL_MODULE.format(port=sql.port, user=sql.user, database=sql.database,
                                    connections=sql.connections) if sql else ""
    conf.write_text(_RADIUSD_CONF.format(
        d=folder, secret=secret, auth=auth_port, acct=acct_port, threads=threads,
        max_threads=max_threads, cleanup_delay=cleanup_delay, sql_module=sql_module,
        authorize="sql" if sql else "files",
        preacct=_UNIQUE_ID.replace("{{", "{").replace("}}", "}") if sql else "",
        accounting="sql" if sql else "ok",
        recv_buff=f"recv_buff = {recv_buff}" if recv_buff else ""))
    conf.chmod(0o600)
    (folder / "users").write_text(users)
    (folder / "dictionary").write_text("")


def start_freeradius(secret: str, users: str, threads: int = 2, max_threads: int = 4,
                     cpu: int | None = None, cleanup_delay: int = 0,
                     prefix: str = "vigil-freeradius-",
                     sql: SqlBackend | None = None, recv_buff: int | None = None
                     ) -> FreeRadius:
    """A started FreeRADIUS in a new temp folder (removed by ``stop``)."""
    return FreeRadius(secret=secret, users=users, threads=threads, max_threads=max_threads,
                      cpu=cpu, cleanup_delay=cleanup_delay, prefix=prefix, sql=sql,
                      recv_buff=recv_buff).start()
