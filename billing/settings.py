"""Billing engine options beyond the source's sections (declared once)."""

from __future__ import annotations

from vigil.config import boolean, integer
from vigil.datatypes import Declarations

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
declare("Radius", "Hung_Process_sec", integer(0, 3600), "10",
        "With several engine processes, the parent kills (SIGKILL) and restarts one whose "
        "packet loop has not moved for this long (a hung process is otherwise only seen by "
        "the self-tests the kernel hands it); 0 turns this off.")
declare("Master", "Query_Timeout_sec", integer(1, 600), "5",
        "Longest wait for one database statement; a request the database cannot decide in "
        "this time gets no reply, so the gateway fails over.")
