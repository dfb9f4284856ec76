"""Nagios notification mails: subject and body composed from Nagios' macros.

Nagios runs ``vigil monitor notify service|host -- NOTIFY_COMMAND...`` with
``enable_environment_macros=1``, so every macro arrives as a ``NAGIOS_<NAME>``
environment variable. Nothing a user typed (an acknowledgement comment, a
plugin's output) passes through a shell: a comment with quotes or backticks
is text, not a command. The composed mail goes to ``[Monitor] Notify_Command``
(``--subject S --to ADDR``, body on stdin) as before.

What the on-call engineer reads: what, where, since when the state holds
(the state change, not the notification time), for how long (rounded), who
acknowledged it and why, the runbook link and its first step.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence

HEAD = "***** Vigil / Nagios *****"


def macro(env: Mapping[str, str], name: str) -> str:
    return env.get(f"NAGIOS_{name}", "").strip()


def rounded_duration(seconds: float) -> str:
    """'45 s', '12 min', '3 h 5 min', '2 d 4 h': what a person reads at a glance."""
    s = max(0, int(round(seconds)))
    if s < 90:
        return f"{s} s"
    m = int(round(s / 60))
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def when(epoch_text: str) -> float | None:
    try:
        value = float(epoch_text)
    except ValueError:
        return None
    return value if value > 0 else None


def _since_lines(env: Mapping[str, str], changed_macro: str) -> list[str]:
    now = when(macro(env, "TIMET")) or time.time()
    changed = when(macro(env, changed_macro))
    if changed is None:
        return []
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(changed))
    return [f"Since: {stamp} ({rounded_duration(now - changed)} ago)"]


def _ack_lines(env: Mapping[str, str], kind: str) -> list[str]:
    if macro(env, "NOTIFICATIONTYPE") != "ACKNOWLEDGEMENT":
        return []
    prefix = "SERVICE" if kind == "service" else "HOST"
    author = macro(env, "NOTIFICATIONAUTHOR") or macro(env, f"{prefix}ACKAUTHOR") or "unknown"
    comment = macro(env, "NOTIFICATIONCOMMENT") or macro(env, f"{prefix}ACKCOMMENT")
    return [f"Acknowledged by: {author}", f"Comment: {comment or '(none)'}"]


def compose(env: Mapping[str, str], kind: str) -> tuple[str, str]:
    """(subject, body) of a ``service`` or ``host`` notification."""
    ntype = macro(env, "NOTIFICATIONTYPE") or "PROBLEM"
    host = macro(env, "HOSTNAME")
    lines = [HEAD, "", f"Notification: {ntype}"]
    if kind == "service":
        desc, state = macro(env, "SERVICEDESC"), macro(env, "SERVICESTATE")
        subject = f"{ntype}: {host}/{desc} is {state}"
        site = macro(env, "HOSTGROUPNAME")
        lines += [f"Host: {host}" + (f" (site {site})" if site else ""),
                  f"Service: {desc}", f"State: {state}",
                  f"Info: {macro(env, 'SERVICEOUTPUT')}"]
        lines += _since_lines(env, "LASTSERVICESTATECHANGE")
        lines += _ack_lines(env, kind)
        runbook, step = macro(env, "SERVICENOTESURL"), macro(env, "SERVICENOTES")
    else:
        alias, state = macro(env, "HOSTALIAS") or host, macro(env, "HOSTSTATE")
        subject = f"{ntype}: {alias} is {state}"
        lines += [f"Host: {host} ({alias})", f"State: {state}",
                  f"Info: {macro(env, 'HOSTOUTPUT')}"]
        lines += _since_lines(env, "LASTHOSTSTATECHANGE")
        lines += _ack_lines(env, kind)
        runbook, step = macro(env, "HOSTNOTESURL"), macro(env, "HOSTNOTES")
    if runbook:
        lines.append(f"Runbook: {runbook}")
    if step:
        lines.append(f"First step: {step}")
    return subject, "\n".join(lines) + "\n"


def send(env: Mapping[str, str], kind: str, notify: Sequence[str]) -> int:
    """Compose and hand the mail to the notify command; its exit status is ours."""
    subject, body = compose(env, kind)
    to = macro(env, "CONTACTEMAIL")
    argv = [*notify, "--subject", subject]
    if to:
        argv += ["--to", to]
    try:
        proc = subprocess.run(argv, input=body, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"vigil monitor notify: {notify[0]}: {exc}")
        return 2
    return proc.returncode
