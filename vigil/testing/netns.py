"""Network namespaces for two-site tests: a namespace joined to this one by a
veth pair, addresses from 10.231.0.0/16 on veths made here, link cuts and
packet loss with nftables (the kernel here has no netem qdisc).

Everything made is removed by :meth:`Site.destroy` (the namespace, and with
it its end of the veth; the other end goes with it).
"""

from __future__ import annotations

import os
import shutil
import subprocess


class NetnsUnavailable(RuntimeError):
    """Not root, or `ip` / `nft` missing."""


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def available() -> str | None:
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} missing: run `make setup`"
    return None


class Site:
    """Namespace ``name`` with ``inside`` on its veth, ``outside`` on ours (/30)."""

    def __init__(self, name: str, subnet: int) -> None:
        why = available()
        if why:
            raise NetnsUnavailable(why)
        self.name = name
        self.inside = f"10.231.{subnet}.1"
        self.outside = f"10.231.{subnet}.2"
        self.veth_out = f"vo{os.getpid() % 10000}{subnet}"[:15]
        self.veth_in = f"vi{os.getpid() % 10000}{subnet}"[:15]

    def create(self) -> Site:
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "link", "add", self.veth_out, "type", "veth", "peer", "name",
                 self.veth_in)
            _run("ip", "link", "set", self.veth_in, "netns", self.name)
            _run("ip", "addr", "add", f"{self.outside}/30", "dev", self.veth_out)
            _run("ip", "link", "set", self.veth_out, "up")
            self.exec("ip", "addr", "add", f"{self.inside}/30", "dev", self.veth_in)
            self.exec("ip", "link", "set", self.veth_in, "up")
            self.exec("ip", "link", "set", "lo", "up")
            self.exec("nft", "add", "table", "inet", "vigil")
            self.exec("nft", "add", "chain", "inet", "vigil", "in",
                      "{ type filter hook input priority 0; }")
        except Exception:
            self.destroy()
            raise
        return self

    def exec(self, *argv: str) -> str:
        return _run("ip", "netns", "exec", self.name, *argv)

    def prefix(self) -> list[str]:
        """argv prefix that runs a program inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        """Drop everything arriving in the namespace from outside (a cut link)."""
        self.exec("nft", "add", "rule", "inet", "vigil", "in", "iifname", self.veth_in, "drop")

    def refuse_new(self) -> None:
        """Drop new connections from outside, keep established ones (cuts a
        probe that connects each time, not a long-lived replication stream)."""
        self.exec("nft", "add", "rule", "inet", "vigil", "in", "iifname", self.veth_in,
                  "ct", "state", "new", "drop")

    def loss(self, percent: int) -> None:
        """Drop about ``percent`` % of the packets arriving from outside."""
        self.exec("nft", "add", "rule", "inet", "vigil", "in", "iifname", self.veth_in,
                  "numgen", "random", "mod", "100", "<", str(percent), "drop")

    def heal(self) -> None:
        self.exec("nft", "flush", "chain", "inet", "vigil", "in")

    def destroy(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.veth_out], capture_output=True, timeout=30)

    def __enter__(self) -> Site:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
