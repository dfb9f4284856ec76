"""The replication room's exceptions: one tree, mapped to exit codes by the CLI."""

from __future__ import annotations


class ReplicationError(Exception):
    """A repair or status step that cannot go on; the message is for the admin."""

    exit_code = 1


class ServerUnavailable(ReplicationError):
    """A server refused the connection, did not answer in time, or went away."""

    exit_code = 3


class AccessDenied(ServerUnavailable):
    """The server answered but refused the credentials."""


class UnsafeTarget(ReplicationError):
    """The target does not look like a replica of the configured master."""

    exit_code = 2


class RepairBusy(ReplicationError):
    """Another repair of this replica is running."""


class NotEnoughDisk(ReplicationError):
    """The snapshot would not fit on the disk that receives it."""


class SnapshotFailed(ReplicationError):
    """Taking or loading the master's snapshot failed."""


class VerifyFailed(ReplicationError):
    """Replication was restarted but is not running, not caught up, or differs."""
