"""The event backbone: contracts, consumers, dead letters, tracing and status for Django apps
that collaborate through Kafka events (docs/library.md)."""

__version__ = "0.1.0"
