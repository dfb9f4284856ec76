"""Site redundancy: the secondary site's modes, stand-alone store, failback and watchdog."""
