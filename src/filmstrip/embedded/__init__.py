"""Pieces that make the no-settings embedded mode work (a private redis-server)."""
