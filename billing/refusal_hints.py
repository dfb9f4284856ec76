"""What an admin should do about each refusal the engine can answer (``vigil call``).

Keyed by Cisco ``h323-return-code`` (:class:`billing.engine.ReturnCode`); a
test keeps one hint per refusal code. ``{account}`` is the account asked for.
"""

from __future__ import annotations

HINTS: dict[int, str] = {
    1: "no such account, or no account id in the request: `vigil account show {account}`; "
       "the demo accounts are in etc/demo/provision.yaml (--account picks one)",
    2: "wrong password: --password must be the account's voip_password; without --password "
       "the call asks the engine to ignore it (PortaBilling_Ignore_Password:YES)",
    3: "the debit account is logged in by another call that has not ended "
       "(simultaneous-login prevention, [Fraud_Detection]); send that call's Stop, or wait "
       "Recovery_Time_sec",
    4: "the debit account has no money left (`vigil account show {account}`: balance, "
       "available_funds); top it up with `vigil account adjust {account} 10 --reason ...`, "
       "or reset the demo (`make reset-demo`, README)",
    5: "the account has expired (expiration_date): change it in the provisioning document "
       "and run `vigil provision` again",
    6: "the credit account or its customer has reached its credit limit: record a payment "
       "with `vigil account adjust {account} AMOUNT --reason ...` or raise credit_limit",
    7: "the account or its customer is blocked, or not active yet (activation_date): "
       "`vigil account show {account}`, `vigil customer show NAME`",
    8: "the engine cannot route this call: --nas-ip is not a provisioned node, the product "
       "has no tariff at this node, or the destination has no rate; the engine log ([Log] "
       "Log_Dest) says which",
    9: "the tariff has no rate for this destination, or the rate is Forbidden (the engine "
       "log says which): try another --cld or import a rate (`vigil rates import`)",
    11: "the request lacked a field the engine needs (Called-Station-Id): pass --cld",
    12: "the funds do not cover the first interval of this destination: top up with "
        "`vigil account adjust {account} AMOUNT --reason ...`",
}


def hint(code: int | None, account: str) -> str:
    if code is None:
        return "the reply has no h323-return-code: see the engine log ([Log] Log_Dest)"
    text = HINTS.get(code)
    if text is None:
        return f"return code {code} has no hint yet: see the engine log ([Log] Log_Dest)"
    return text.format(account=account)


def return_code(value: str) -> int | None:
    """``h323-return-code=4`` or ``4`` -> 4; None if absent or not a number."""
    tail = value.rpartition("=")[2].strip()
    return int(tail) if tail.isdigit() else None
