"""Options of the check plugins (declared once; see vigil.options).

The checks file itself is ``[Monitor] Checks_File`` (the scheduler's option).
"""

from __future__ import annotations

from vigil.config import declare, text

declare("Checks", "State_Dir", text, "",
        "Where plugins keep what they remember between runs (engine counters, log "
        "offsets). Empty means <[Site] State_Dir>/checks.")
