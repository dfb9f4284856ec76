"""Options of the supervised process tree, radcheck's state and the alert limiter.

New concerns get new names: ``[Supervisor]`` is Vigil's own section. The
``State_File`` options added to the source's ``[Self Test]`` and ``[Email]``
sections are empty by default, meaning "inside ``[Site] State_Dir``", so an
appliance that moves its state folder needs to change one option only.
"""

from __future__ import annotations

from pathlib import Path

from vigil.config import Config, declare, integer, path, text

# -------------------------------------------------------------- [Supervisor]
declare("Supervisor", "Socket_File", text, "",
        "Unix socket of supervisord's XML-RPC interface (radcheck restarts the RADIUS "
        "program through it). Empty means <State_Dir>/supervisor.sock.")
declare("Supervisor", "Config_File", path, "supervisord.conf",
        "supervisord configuration that `vigil supervisord` runs (relative to this file).")
declare("Supervisor", "RPC_Timeout_sec", integer(1, 600), "30",
        "How long a call to supervisord may take; must exceed the programs' stopwaitsecs.")

# ------------------------------------------------- additions to [Self Test]
declare("Self Test", "State_File", text, "",
        "radcheck's last result (JSON, written atomically after every test) for the "
        "check plugins. Empty means <State_Dir>/radcheck.json.")

# ----------------------------------------------------- additions to [Email]
declare("Email", "Flood_State_File", text, "",
        "Memory of the e-mail flood limiter (when the last alerts went out, how many "
        "were held back), so a restart does not reset it. Empty means "
        "<State_Dir>/alerts-flood.json.")


def state_file(cfg: Config, section: str, option: str, default_name: str) -> Path:
    """A state-file option: its value (relative to the config file) or State_Dir/name."""
    if cfg.get(section, option):
        return cfg.path(section, option)
    return cfg.path("Site", "State_Dir") / default_name


def supervisor_socket(cfg: Config) -> Path:
    return state_file(cfg, "Supervisor", "Socket_File", "supervisor.sock")
