"""`vigil call`: a gateway simulator that places one test call.

Sends what a NexTone MSX sends for one call (authentication, authorization,
accounting Start, Stop for the outgoing leg, Stop for the incoming leg) and
prints every reply, so an admin can check a new tariff end to end. The
shared secret is read from the node in the billing database (or from
``--secret-file``): it never appears on the command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Any

from pyrad import packet as rp

from billing.server import load_dictionary
from vigil.radius_client import RadiusClient, RadiusError, RadiusTimeout, Timeouts


class SimulatorError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=None, help="engine address (default [Radius] Host)")
    p.add_argument("--auth-port", type=int, default=None)
    p.add_argument("--acct-port", type=int, default=None)
    p.add_argument("--nas-ip", default="164.4.89.20", help="NAS-IP-Address of the node")
    p.add_argument("--secret-file", help="file holding the node's shared secret "
                   "(default: read from the node in the billing database)")
    p.add_argument("--account", default="193.100.201.1", help="account id (PortaBilling_UserName)")
    p.add_argument("--cli", default="193.100.201.1", help="Calling-Station-Id")
    p.add_argument("--cld", default="441259322891834", help="number dialled")
    p.add_argument("--duration", type=int, default=None,
                   help="seconds the call lasts (default: the h323-credit-time granted)")
    p.add_argument("--remote-ip", default="65.218.170.184",
                   help="where the outgoing leg went (the vendor's gateway)")
    p.add_argument("--password", default=None,
                   help="VoIP password to send; default: PortaBilling_Ignore_Password:YES")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per try")
    p.add_argument("--json", action="store_true", help="print the replies as JSON")


def _secret(args: argparse.Namespace, cfg: Any) -> bytes:
    if args.secret_file:
        try:
            return Path(args.secret_file).read_text().strip().encode()
        except OSError as exc:
            raise SimulatorError(f"cannot read {args.secret_file}: {exc.strerror}", 2) from None
    env = os.environ.get("VIGIL_CALL_SECRET")
    if env:
        return env.encode()
    from sqlalchemy import select

    from billing import models as m
    from billing.db import make_engine

    try:
        with make_engine(cfg).connect() as conn:
            secret = conn.execute(select(m.Node.radius_secret).where(
                m.Node.nas_ip == args.nas_ip)).scalar_one_or_none()
    except Exception as exc:
        raise SimulatorError(f"cannot read the node's secret from the database ({exc}); "
                             "use --secret-file", 3) from None
    if secret is None:
        raise SimulatorError(f"no node with NAS-IP-Address {args.nas_ip}; "
                             "use --secret-file", 2)
    return str(secret).encode()


def _ctime(t: dt.datetime) -> str:
    return t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}" + t.strftime(
        " UTC %a %b %d %Y")


def place_call(args: argparse.Namespace) -> int:
    from vigil.config import load

    cfg = load(args.config)
    server = args.server or cfg.get("Radius", "Host")
    # a gateway retransmits: two tries of --timeout seconds each
    client = RadiusClient(server, args.auth_port or cfg.get("Radius", "Auth_Port"),
                          args.acct_port or cfg.get("Radius", "Acct_Port"),
                          _secret(args, cfg), load_dictionary(),
                          Timeouts(per_try=args.timeout, tries=2))
    conf_id = f"{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:8]}@vigil-call"
    out_conf = f"{uuid.uuid4().int % 10**10}-vigil-call"
    ivr = [f"h323-ivr-out=PortaBilling_UserName:{args.account}"]
    if args.password is None:
        ivr.append("h323-ivr-out=PortaBilling_Ignore_Password:YES")
    steps: list[dict[str, Any]] = []

    def send(label: str, pkt: rp.Packet) -> rp.Packet:
        try:
            reply = client.send(pkt).packet
        except RadiusError as exc:
            steps.append({"step": label, "reply": None})
            _print(steps, args.json)
            why = ("no answer from " + server if isinstance(exc, RadiusTimeout) else str(exc))
            raise SimulatorError(f"{label}: {why} (engine down, wrong secret, or unknown "
                                 "node)", 3) from None
        attrs = {str(k): [str(v) for v in reply[k]] for k in reply.keys()
                 if k not in ("Message-Authenticator", 80)}
        names = {rp.AccessAccept: "Access-Accept", rp.AccessReject: "Access-Reject",
                 rp.AccountingResponse: "Accounting-Response"}
        steps.append({"step": label, "reply": names.get(reply.code, str(reply.code)),
                      "attributes": attrs})
        return reply

    def auth(label: str, called: str | None) -> rp.Packet:
        req = client.auth_packet()
        req["User-Name"] = "NextoneUser"
        req["NAS-IP-Address"] = args.nas_ip
        req["Calling-Station-Id"] = args.cli
        req["h323-conf-id"] = conf_id
        req["User-Password"] = req.PwCrypt(args.password if args.password is not None
                                           else "nextone")
        if called:
            req["Called-Station-Id"] = called
        req["Cisco-AVPair"] = ivr
        return send(label, req)

    r1 = auth("authentication", None)
    if r1.code != rp.AccessAccept:
        return _refused(steps, r1, args)
    r2 = auth("authorization", args.cld)
    if r2.code != rp.AccessAccept:
        return _refused(steps, r2, args)
    credit = int(str(r2.get("h323-credit-time", ["0"])[0]).rpartition("=")[2] or 0)
    duration = args.duration if args.duration is not None else credit
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(seconds=duration)

    def acct(label: str, status: str, origin: str, conf: str, session: str, called: str,
             remote: str, with_times: bool) -> None:
        req = client.acct_packet()
        req["User-Name"] = ""
        req["NAS-IP-Address"] = args.nas_ip
        req["Acct-Status-Type"] = status
        req["Called-Station-Id"] = called
        req["Calling-Station-Id"] = args.cli
        req["Acct-Session-Id"] = session
        req["h323-conf-id"] = conf
        req["h323-incoming-conf-id"] = conf_id
        req["h323-call-origin"] = origin
        req["h323-call-type"] = "VoIP"
        req["h323-remote-address"] = remote
        if with_times:
            req["h323-setup-time"] = _ctime(start)
            req["h323-connect-time"] = _ctime(start)
            req["h323-disconnect-time"] = _ctime(end)
            req["h323-disconnect-cause"] = "10"
            req["Acct-Session-Time"] = duration
        req["Cisco-AVPair"] = [f"h323-ivr-out=PortaBilling_UserName:{args.account}"]
        send(label, req)

    from billing.translation import translate

    out_cld = args.cld
    try:
        from sqlalchemy import select

        from billing import models as m
        from billing.db import make_engine

        with make_engine(cfg).connect() as conn:
            rule = conn.execute(select(m.Node.translation_rule).where(
                m.Node.nas_ip == args.nas_ip)).scalar_one_or_none()
        out_cld = translate(rule or "", args.cld)
    except Exception:
        pass  # the engine translates anyway; this only makes the Stop look real
    acct("accounting start", "Start", "originate", out_conf, "vc-o", out_cld, args.remote_ip,
         False)
    acct("accounting stop (outgoing leg)", "Stop", "originate", out_conf, "vc-o", out_cld,
         args.remote_ip, True)
    acct("accounting stop (incoming leg)", "Stop", "answer", conf_id, "vc-a", out_cld,
         args.nas_ip, True)
    _print(steps, args.json)
    return 0


def _refused(steps: list[dict[str, Any]], reply: rp.Packet, args: argparse.Namespace) -> int:
    """Print the dialogue and what to do about the refusal; exit 1."""
    from billing.refusal_hints import hint, return_code

    code = return_code(str(reply.get("h323-return-code", [""])[0]))
    steps[-1]["hint"] = hint(code, args.account)
    _print(steps, args.json)
    if not args.json:
        print(f"hint: {steps[-1]['hint']}")
    return 1


def _print(steps: list[dict[str, Any]], as_json: bool) -> None:
    import json

    if as_json:
        print(json.dumps(steps, indent=2))
        return
    for s in steps:
        print(f"{s['step']}: {s['reply'] or 'NO ANSWER'}")
        for k, vs in (s.get("attributes") or {}).items():
            for v in vs:
                print(f"    {k} = {v}")
