"""The transactional outbox: rows written with the domain change, published by the relay."""
