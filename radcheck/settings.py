"""``[Self Test]``: radcheck's options, with the source's names and meanings.

``State_File`` is Vigil's addition: empty by default, meaning "inside ``[Site]
State_Dir``", so an appliance that moves its state folder changes one option.
"""

from __future__ import annotations

from vigil.datatypes import Declarations, integer, ip_address, nonempty, path, text
from vigil.datatypes import secret as secret_text

OPTIONS = Declarations()
declare = OPTIONS.declare

# ------------------------------------------------------------- [Self Test]
declare("Self Test", "Timeout_sec", integer(1, 300), "5",
        "How long radcheck waits for the RADIUS answer.")
declare("Self Test", "Test_Frequency_sec", integer(1, 3600), "60",
        "How often radcheck asks for an Access-Accept.")
declare("Self Test", "Errors_Before_Restart", integer(1, 1000), "3",
        "Consecutive failures before the RADIUS program is restarted.")
declare("Self Test", "Path_To_Lock_File", path, "/var/run/radcheck.pid",
        "Keeps a second radcheck from running.")
declare("Self Test", "NAS-IP-Address", ip_address, "127.0.0.1",
        "NAS-IP-Address of the self-test requests.")
declare("Self Test", "Shared_Secret", secret_text, "SecretKey",
        "RADIUS secret of the self-test NAS.", secret=True)
declare("Self Test", "User-Name", nonempty, "127.0.0.1", "Self-test account.")
declare("Self Test", "Password", secret_text, "cisco", "Self-test password.", secret=True)
declare("Self Test", "State_File", text, "",
        "radcheck's last result (JSON, written atomically after every test) for the "
        "check plugins. Empty means <State_Dir>/radcheck.json.")
