"""Billing engine options beyond the source's sections (declared once)."""

from __future__ import annotations

import re

from vigil.config import boolean, integer
from vigil.datatypes import Declarations

MAX_CPU = 4095
_DIGITS = re.compile(r"[0-9]{1,6}")


def cpu_affinity(text: str) -> str | tuple[int, ...]:
    """``Auto``, ``No``, or CPUs as taskset writes them (``0,2-3``)."""
    low = text.strip().lower()
    if low in ("auto", "no"):
        return low
    cpus: list[int] = []
    for part in low.split(","):
        lo, dash, hi = part.strip().partition("-")
        # ASCII digits only: isdigit() and int() also take "٣"; an admin means neither
        if not _DIGITS.fullmatch(lo) or (dash and not _DIGITS.fullmatch(hi)):
            raise ValueError(f"{text!r} is not Auto, No or a list of CPUs such as 0,2-3")
        first, last = int(lo), int(hi) if dash else int(lo)
        if first > last or last > MAX_CPU:
            raise ValueError(f"{part.strip()!r} is not a range of CPUs 0-{MAX_CPU}")
        cpus.extend(c for c in range(first, last + 1) if c not in cpus)
    return tuple(cpus)


OPTIONS = Declarations()  # collected by vigil.config.default_registry
declare = OPTIONS.declare

declare("Radius", "Max_Credit_Time_sec", integer(60, 86400), "14400",
        "Longest h323-credit-time announced, however rich the account.")
declare("Radius", "Cisco_VSA_Prefix", boolean, "No",
        "Write reply VSAs as 'h323-credit-time=180' (Cisco IOS style) rather than '180' "
        "(NexTone style, as in the source's logs).")
declare("Radius", "Duplicate_Cache_sec", integer(1, 3600), "30",
        "How long a reply is kept, at least (at most twice that), to answer a "
        "retransmission identically (RFC 5080).")
declare("Radius", "Stats_Interval_sec", integer(1, 3600), "5",
        "How often the engine writes its counters to <State_Dir>/radiusd-stats.json.")
declare("Radius", "Max_Call_Duration_sec", integer(60, 31 * 86400), "172800",
        "A Stop claiming a longer call is quarantined instead of charged.")
declare("Radius", "Account_Cache_sec", integer(0, 3600), "10",
        "How long an account read for a request stays in the engine's memory when no "
        "request uses it. Accounts in memory are re-read every half second (admin changes "
        "show on every engine within a second, at once on SIGHUP), and the memory only "
        "proposes: the database grants every reservation.")
declare("Radius", "Processes", integer(0, 256), "0",
        "Engine processes answering on the same ports (SO_REUSEPORT); 0 (the default) means "
        "one per core this program may run on; 1 a single process with no parent. "
        "Any number of processes and servers may share one billing database: the database "
        "arbitrates every reservation and holds every login.")
declare("Radius", "CPU_Affinity", cpu_affinity, "Auto",
        "With several engine processes, which CPU each one (all its threads) runs on: Auto "
        "(the default) pins process k to the k-th CPU this program may run on, round robin; "
        "a list such as 0,2-3 does the same over those CPUs; No leaves them to the "
        "scheduler. Why pin: a process's packet loop and committers hand the interpreter's "
        "lock to each other thousands of times a second, which costs far less on one core "
        "than across two (docs/billing.md, \"Processes, servers\"). One process alone is "
        "never pinned.")
declare("Radius", "Hung_Process_sec", integer(0, 3600), "10",
        "With several engine processes, the parent kills (SIGKILL) and restarts one whose "
        "packet loop has not moved for this long (a hung process is otherwise only seen by "
        "the self-tests the kernel hands it); 0 turns this off.")
declare("Master", "Query_Timeout_sec", integer(1, 600), "5",
        "Longest wait for one database statement; a request the database cannot decide in "
        "this time gets no reply, so the gateway fails over.")
