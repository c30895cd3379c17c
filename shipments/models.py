"""Rows owned by the shipments context."""
