"""Rows owned by the orders context."""
