"""Tiny private helpers shared by every layer."""
