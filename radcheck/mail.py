"""radcheck's alert mails: the built-in texts of its two templates.

``etc/Mail_Templates`` ships the same texts as files an admin may edit; these
are used when the file is missing or unreadable (an alert must never be lost
for want of a template). Sending and flood limiting are the core's
(:mod:`vigil.alerts`). Each mail says what to do first and links the runbook
section (``$runbook``, :func:`vigil.runbooks.runbook_link`).
"""

from __future__ import annotations

OUTAGE = "radcheck_outage"
RECOVERY = "radcheck_recovery"
RUNBOOK = ("radcheck", "radcheck-outage")  # docs/radcheck.md, <a id="radcheck-outage">

TEMPLATES: dict[str, str] = {
    OUTAGE: (
        "Subject: [Vigil $site] RADIUS self-test failing on $host: $program restarted\n"
        "\n"
        "The RADIUS self-test on $host failed $failures times in a row.\n"
        "Last error: $last_error\n"
        "Restart of supervisor program '$program': $restart\n"
        "Test: Access-Request for $user to $target, every $frequency s, timeout $timeout s.\n"
        "Time: $time\n"
        "\n"
        "First step: `vigil status` on $host: is $program RUNNING with a new pid? If a\n"
        "recovery mail follows, the restart helped: find out why it hung (billing log\n"
        "around $time). If the restart FAILED, read $program's log in [Site] Log_Dir.\n"
        "Runbook: $runbook\n"
    ),
    RECOVERY: (
        "Subject: [Vigil $site] RADIUS self-test OK again on $host\n"
        "\n"
        "The RADIUS engine on $host answers the self-test again "
        "(Access-Accept in $rtt_ms ms).\n"
        "Outage: $failures failed tests, $restarts restart(s), since $outage_since.\n"
        "Time: $time\n"
        "\n"
        "First step: find out why it stopped answering (billing log and $program's log in\n"
        "[Site] Log_Dir around $outage_since; the db_* checks in Nagios).\n"
        "Runbook: $runbook\n"
    ),
}
