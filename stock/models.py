"""Rows owned by the stock context."""
