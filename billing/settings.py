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
        "How long a reply is kept to answer a retransmission identically (RFC 5080).")
declare("Radius", "Stats_Interval_sec", integer(1, 3600), "5",
        "How often the engine writes its counters to <State_Dir>/radiusd-stats.json.")
declare("Radius", "Max_Call_Duration_sec", integer(60, 31 * 86400), "172800",
        "A Stop claiming a longer call is quarantined instead of charged.")
declare("Radius", "Account_Cache_sec", integer(0, 3600), "10",
        "How long the engine trusts an account it has read (admin changes such as a top-up "
        "or a blocked account show within this time, or at once on SIGHUP). Balances "
        "changed by calls are always exact: the engine itself writes them.")
