"""Restoration networks, one architecture per module, found by name through the registry."""
