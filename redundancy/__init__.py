"""Site redundancy: replication repair (and, later, the site watchdog and failback)."""
