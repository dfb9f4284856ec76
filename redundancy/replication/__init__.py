"""Replication status and repair for a MariaDB master and its replica.

Exceptions (``errors.py``)::

    ReplicationError                 anything the repair must stop on; message for the admin
    ├── ServerUnavailable            cannot connect / connection lost (exit 3)
    │   └── AccessDenied             wrong credentials (exit 3)
    ├── UnsafeTarget                 the "replica" looks like the master, or follows another
    ├── RepairBusy                   another repair holds the lock
    ├── NotEnoughDisk                the snapshot would not fit
    ├── SnapshotFailed               mariadb-dump / mariabackup / the import failed
    └── VerifyFailed                 threads not running, not caught up, checksums differ

Modules: ``server`` (connections, SQL log, option files), ``sql`` (the
version resolver table), ``gtid`` (pure GTID arithmetic), ``status``,
``heartbeat``, ``diagnose``, ``rowfix``, ``reseed`` (mariadb-dump),
``backup`` (mariabackup), ``verify``, ``lock``, ``repair`` (the plan).
"""
