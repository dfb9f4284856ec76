"""MariaDB GTID positions as values: parse, compare, subtract. Pure functions.

A MariaDB GTID is ``domain-server-seq``. A *position* (``@@gtid_binlog_pos``,
``@@gtid_slave_pos``) holds the last GTID per domain; a *state*
(``@@gtid_binlog_state``) the last one per (domain, server). Sequence numbers
grow per domain whoever writes, so the distance between two positions in the
same domain is the number of transactions between them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass(frozen=True, order=True)
class Gtid:
    domain: int
    server_id: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.seq}"


def parse_gtid(text: str) -> Gtid:
    m = _GTID.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a GTID (domain-server_id-sequence)")
    return Gtid(int(m[1]), int(m[2]), int(m[3]))


def parse_list(text: str | None) -> list[Gtid]:
    """A comma-separated GTID list as MariaDB prints it ('' or None is empty)."""
    if not text:
        return []
    return [parse_gtid(part) for part in text.replace("\n", "").split(",") if part.strip()]


def by_domain(gtids: list[Gtid]) -> dict[int, Gtid]:
    """Last GTID per domain (the highest sequence number)."""
    out: dict[int, Gtid] = {}
    for g in gtids:
        if g.domain not in out or g.seq > out[g.domain].seq:
            out[g.domain] = g
    return out


def format_list(gtids: list[Gtid]) -> str:
    return ",".join(str(g) for g in sorted(gtids))


def transactions_behind(master_pos: str | None, replica_pos: str | None) -> int:
    """How many transactions the replica still has to apply, summed over domains."""
    master = by_domain(parse_list(master_pos))
    replica = by_domain(parse_list(replica_pos))
    behind = 0
    for domain, g in master.items():
        have = replica.get(domain)
        behind += max(0, g.seq - (have.seq if have else 0))
    return behind


def covers(pos: str | None, target: str | None) -> bool:
    """True when ``pos`` has reached ``target`` in every domain of ``target``."""
    return transactions_behind(target, pos) == 0


def errant(replica_state: str | None, master_state: str | None) -> list[Gtid]:
    """GTIDs the replica wrote itself that the master never saw.

    ``replica_state`` is the replica's ``@@gtid_binlog_state`` (one entry per
    domain and server); ``master_state`` the master's. An entry is errant when
    the master has no entry of the same domain and server reaching its sequence
    number: a write made on the replica (or on a server the master never
    followed), which breaks GTID strict mode and must be undone or forgotten.
    """
    master: dict[tuple[int, int], int] = {}
    for g in parse_list(master_state):
        key = (g.domain, g.server_id)
        master[key] = max(master.get(key, 0), g.seq)
    return [g for g in parse_list(replica_state)
            if master.get((g.domain, g.server_id), -1) < g.seq]
