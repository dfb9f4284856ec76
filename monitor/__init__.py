"""Monitoring: the per-server check scheduler and the central Nagios configuration."""
