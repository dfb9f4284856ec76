"""Regenerate the known-bytes test data from the real Debian ``send_nsca``.

Run by hand (``.venv/bin/python tests/nsca/capture_send_nsca.py``): a tiny
loopback listener plays the server with a fixed IV and timestamp, records
every byte ``send_nsca`` writes, and stores it in ``tests/nsca/data/``.
The tests only read the stored files, so they do not depend on the random
filler the C client puts into each packet.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

DATA = Path(__file__).parent / "data"
IV = bytes((i * 37 + 11) & 0xFF for i in range(128))
TIMESTAMP = 1700000000
PASSWORD = "s3cr3t-nsca"
# one set per result, separated by ETB as send_nsca 2.10 wants
INPUT = ("web1\tHTTP\t0\tHTTP OK: 200 in 0.01s|time=0.01s\x17"
         "db1\t1\tPING WARNING - rta 120ms\x17"
         "pbx\tSIP trunk\t2\tCRITICAL: tab\there and\nsecond line\\n\x17")
EXPECTED = [
    {"host": "web1", "service": "HTTP", "status": 0,
     "output": "HTTP OK: 200 in 0.01s|time=0.01s"},
    {"host": "db1", "service": None, "status": 1, "output": "PING WARNING - rta 120ms"},
    {"host": "pbx", "service": "SIP trunk", "status": 2,
     "output": "CRITICAL: tab\there and\nsecond line\\n"},
]


def capture(method: int, legacy: bool) -> bytes:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        conn.sendall(IV + TIMESTAMP.to_bytes(4, "big"))
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        got.append(b"".join(chunks))
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    with tempfile.NamedTemporaryFile("w", suffix=".cfg") as cfg:
        cfg.write(f"password={PASSWORD}\nencryption_method={method}\n")
        cfg.flush()
        cmd = ["send_nsca", "-H", "127.0.0.1", "-p", str(port), "-c", cfg.name]
        if legacy:
            cmd.append("--legacy-2-7-mode")
        subprocess.run(cmd, input=INPUT.encode(), check=True, capture_output=True)
    t.join(10)
    srv.close()
    return got[0]


def main() -> None:
    DATA.mkdir(exist_ok=True)
    meta = {"iv": IV.hex(), "timestamp": TIMESTAMP, "password": PASSWORD,
            "input": INPUT, "expected": EXPECTED, "files": {}}
    version = subprocess.run(["send_nsca", "-h"], capture_output=True, text=True).stdout
    meta["send_nsca"] = next((ln for ln in version.splitlines() if "NSCA Client" in ln), "")
    for method in (0, 1, 3, 14):
        for legacy in (False, True):
            name = f"send_nsca_m{method}_{'legacy' if legacy else 'v3'}.bin"
            data = capture(method, legacy)
            (DATA / name).write_bytes(data)
            meta["files"][name] = {"method": method, "legacy": legacy, "size": len(data)}
            print(name, len(data))
    (DATA / "send_nsca_capture.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    os.chdir(Path(__file__).parent)
    main()
