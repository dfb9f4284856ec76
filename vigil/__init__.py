"""Vigil: monitoring and site redundancy for VoIP billing (shared core)."""

__version__ = "0.1.0"
