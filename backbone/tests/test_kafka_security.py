"""Optional TLS/SASL settings reach every Kafka client, and nonsense combinations are refused.

The broker side (ACLs refusing a principal) is proven against a real broker in test_kafka_acls.py.
"""

from typing import Any

import pytest

from backbone.checks import kafka_security_check
from backbone.kafka import admin_config, consumer_config, producer_config
from backbone.testing.settings import override_backbone
from outbox.publisher import relay_producer_config

SASL = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "stock",
    "KAFKA_SASL_PASSWORD": "s3cret",
}
EXPECTED = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "stock",
    "sasl.password": "s3cret",
}
SECURITY_KEYS = {*EXPECTED, "ssl.ca.location"}


def every_client_config() -> dict[str, dict[str, Any]]:
    """The configs the processes build their clients from (consumers, relay, .dlq, admin)."""
    return {
        "producer": producer_config(),
        "relay producer": relay_producer_config(),
        "consumer": consumer_config("stock"),
        "admin": admin_config(),
    }


@override_backbone(
    KAFKA_SECURITY_PROTOCOL="", KAFKA_SASL_MECHANISM="", KAFKA_SASL_USERNAME="", KAFKA_SASL_PASSWORD=""
)
def test_without_security_settings_clients_connect_in_plaintext() -> None:
    for name, config in every_client_config().items():
        assert not SECURITY_KEYS & config.keys(), f"{name} config has security properties: {config}"


@override_backbone(**SASL, KAFKA_SSL_CA_LOCATION="/etc/ssl/kafka-ca.pem")
def test_sasl_settings_reach_every_client_config() -> None:
    for name, config in every_client_config().items():
        assert {key: config.get(key) for key in EXPECTED} == EXPECTED, name
        assert config["ssl.ca.location"] == "/etc/ssl/kafka-ca.pem", name


@override_backbone(**SASL)
def test_complete_sasl_settings_pass_the_check() -> None:
    assert kafka_security_check() == []


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        (
            {**SASL, "KAFKA_SECURITY_PROTOCOL": ""},
            "KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL is unset (PLAINTEXT)",
        ),
        ({**SASL, "KAFKA_SECURITY_PROTOCOL": "SASL"}, "KAFKA_SECURITY_PROTOCOL='SASL' is not one of"),
        ({**SASL, "KAFKA_SASL_MECHANISM": ""}, "needs KAFKA_SASL_MECHANISM, one of PLAIN"),
        ({**SASL, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "(not 'GSSAPI')"),
        ({**SASL, "KAFKA_SASL_PASSWORD": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
    ],
)
def test_incomplete_or_unsent_credentials_are_refused_at_start_up(settings_: dict, message: str) -> None:
    with override_backbone(**settings_):
        errors = kafka_security_check()
    assert [error.id for error in errors] == ["backbone.E002"], errors
    assert message in errors[0].msg
