"""Rows owned by the payments context."""
