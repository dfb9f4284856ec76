"""Nagios check plugins: one indicator each, Monitoring Plugins conventions.

Every plugin is a module ``checks/<name>.py`` holding ``PLUGIN`` (a
:class:`checks.plugin.Plugin` subclass), runnable as ``vigil-check NAME`` and
as ``python -m checks.NAME``. :data:`PLUGINS` is the list ``vigil-check
--list`` prints and the checks file is validated against.

The site-redundancy indicators (site_mode, site_probes, site_backlog) run
on the secondary site; the stand-by's lag is ``replication``.
"""

PLUGINS: tuple[str, ...] = (
    # RADIUS and billing engine
    "radius_auth", "radius_acct", "radcheck", "auth_failures", "acct_duplicates",
    "radius_drops", "radius_db_errors", "log_errors",
    # billing data
    "db_query", "xdr_rate", "asr", "acd", "active_calls",
    # database server and replication
    "db_connections", "binlog_disk", "replication",
    # site redundancy (secondary site)
    "site_mode", "site_probes", "site_backlog",
    # NSCA relay (configuration server)
    "nsca_spool", "nsca_delivery",
    # processes
    "supervisor", "pidfile", "open_fds", "file_age", "alerts_held",
    # system
    "disk", "inodes", "load", "memory", "swap", "clock_offset",
)
