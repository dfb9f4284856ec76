"""RADIUS authentication round trip with the self-test account: Access-Accept and its time."""

from __future__ import annotations

import argparse
import sys

from pyrad import packet as radpacket

from checks.plugin import Context, Plugin, Reading, TargetDown
from checks.radius import access_request, round_trip, self_test
from vigil.radius_client import reply_messages


def add_radius_arguments(parser: argparse.ArgumentParser, default_port: str) -> None:
    parser.add_argument("-H", "--host", help="RADIUS server (default [Radius] Host)")
    parser.add_argument("-p", "--port", type=int,
                        help=f"port (default [Radius] {default_port})")
    parser.add_argument("-u", "--user",
                        help="account to test (default [Self Test] User-Name); the password "
                             "and shared secret always come from [Self Test]")
    parser.add_argument("-r", "--retries", type=int, default=1, choices=range(0, 6),
                        metavar="N", help="resend N times within the timeout (default 1)")


class RadiusAuth(Plugin):
    name = "radius_auth"
    title = "RADIUS authentication round trip with the self-test account"
    label = "rtt"
    uom = "s"
    warning = "0.5"
    critical = "2"
    default_timeout = 10.0

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_radius_arguments(parser, "Auth_Port")

    def probe(self, ctx: Context) -> Reading:
        test = self_test(ctx, "Auth_Port")
        req = access_request(test)
        reply, rtt = round_trip(req, test, ctx.remaining(),
                                ctx.args.retries)
        if reply.code == radpacket.AccessReject:
            why = reply_messages(reply)
            raise TargetDown(f"Access-Reject for {test.user} from {test.target}"
                             + (f": {why}" if why else ""))
        if reply.code != radpacket.AccessAccept:
            raise TargetDown(f"unexpected RADIUS code {reply.code} from {test.target}")
        return Reading(round(rtt, 6), f"Access-Accept for {test.user} from {test.target} "
                       f"in {rtt * 1000:.1f} ms", min=0)


PLUGIN = RadiusAuth

if __name__ == "__main__":
    sys.exit(RadiusAuth.main())
