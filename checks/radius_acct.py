"""RADIUS accounting round trip: an Interim-Update (Alive) for the self-test account."""

from __future__ import annotations

import argparse
import os
import sys
import time

from pyrad import packet as radpacket

from checks.plugin import Context, Plugin, Reading, TargetDown
from checks.radius import accounting_request, round_trip, self_test
from checks.radius_auth import add_radius_arguments


class RadiusAcct(Plugin):
    name = "radius_acct"
    title = "RADIUS accounting round trip (Interim-Update for the self-test account)"
    label = "rtt"
    uom = "s"
    warning = "0.5"
    critical = "2"
    default_timeout = 10.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_radius_arguments(parser, "Acct_Port")

    def probe(self, ctx: Context) -> Reading:
        test = self_test(ctx, "Acct_Port")
        # A fresh session id per run: a repeat would be answered from a
        # duplicate cache and prove less.
        req = accounting_request(test, f"vigil-check-{os.getpid()}-{time.time_ns()}")
        reply, rtt = round_trip(req, test, ctx.remaining(),
                                ctx.args.retries)
        if reply.code != radpacket.AccountingResponse:
            raise TargetDown(f"unexpected RADIUS code {reply.code} from {test.target}")
        return Reading(round(rtt, 6), f"Accounting-Response for {test.user} from "
                       f"{test.target} in {rtt * 1000:.1f} ms", min=0)


PLUGIN = RadiusAcct

if __name__ == "__main__":
    sys.exit(RadiusAcct.main())
