"""Kafka client configuration in one place: the relay's producer, the runners' consumers.

`BACKBONE["KAFKA_NAMESPACE"]` (empty by default) prefixes every topic and consumer group name on the
broker, so a test run or a second shop can share a cluster without seeing the first one.
Every client starts from `client_config()`: the bootstrap servers plus the optional TLS/SASL
settings (`KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*`; docs/security.md), so no client can
connect without the credentials the broker's ACLs are written for.
"""

from typing import Any

from backbone.conf import backbone_settings


def namespaced(name: str) -> str:
    return f"{backbone_settings.KAFKA_NAMESPACE}{name}"


def physical_topic(topic: str) -> str:
    """The broker-side name of a logical topic such as `orders`."""
    return namespaced(topic)


def logical_topic(physical: str) -> str:
    prefix = backbone_settings.KAFKA_NAMESPACE
    return physical[len(prefix) :] if prefix and physical.startswith(prefix) else physical


def group_id(context: str) -> str:
    """One consumer group per context."""
    return namespaced(context)


# Setting name -> librdkafka property; an empty setting leaves librdkafka's default (plaintext).
_SECURITY_SETTINGS = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
}


def security_config() -> dict[str, str]:
    """The TLS/SASL properties of the settings that are set (the system check backbone.E002
    refuses combinations that would connect without them)."""
    values = {prop: getattr(backbone_settings, name) for name, prop in _SECURITY_SETTINGS.items()}
    return {prop: value for prop, value in values.items() if value}


def client_config(**overrides: Any) -> dict[str, Any]:
    """What every Kafka client needs: where the brokers are and how to authenticate."""
    return {"bootstrap.servers": backbone_settings.KAFKA_BOOTSTRAP_SERVERS, **security_config(), **overrides}


def producer_config(**overrides: Any) -> dict[str, Any]:
    """Idempotent, `acks=all`: no duplicates from retries, no loss on leader change."""
    config: dict[str, Any] = {
        **client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
        "message.timeout.ms": backbone_settings.KAFKA_PRODUCER_TIMEOUT_MS,
        # Batches stay under the topics' max.message.bytes (librdkafka may overshoot by a record).
        "message.max.bytes": backbone_settings.KAFKA_PRODUCER_MAX_BYTES,
        "log_level": 3,
    }
    config.update(overrides)
    return config


def consumer_config(group: str, **overrides: Any) -> dict[str, Any]:
    """Offsets are committed by hand, after the database commit; never automatically."""
    config: dict[str, Any] = {
        **client_config(),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "log_level": 3,
    }
    config.update(overrides)
    return config


def admin_config(**overrides: Any) -> dict[str, Any]:
    return {**client_config(), "log_level": 3, **overrides}
