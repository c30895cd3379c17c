"""System checks: the architecture's rules, verified at start-up."""

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from backbone.conf import backbone_settings

from .contracts import registry
from .topics import topics


@checks.register()
def single_writer_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every registered contract lives in the context that owns its topic."""
    errors: list[checks.CheckMessage] = []
    for cls in registry.all():
        spec = topics().get(cls.topic)
        if spec is None or spec.owner != cls.context:
            owner = spec.owner if spec else "nobody (unknown topic)"
            errors.append(
                checks.Error(
                    f"{cls.type_name} is declared in context {cls.context!r} "
                    f"but topic {cls.topic!r} is owned by {owner}",
                    hint="Declare an event in the events.py of the app that publishes its topic.",
                    obj=cls,
                    id="backbone.E001",
                )
            )
    return errors


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@checks.register()
def kafka_security_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The Kafka TLS/SASL settings make sense together (docs/security.md).

    Credentials with a protocol that does not send them would connect anonymously and meet
    the broker's ACLs as `User:ANONYMOUS`: a confusing "not authorized" far from the cause.
    """
    try:
        problems = _kafka_security_problems(
            protocol=backbone_settings.KAFKA_SECURITY_PROTOCOL,
            mechanism=backbone_settings.KAFKA_SASL_MECHANISM,
            username=backbone_settings.KAFKA_SASL_USERNAME,
            password=backbone_settings.KAFKA_SASL_PASSWORD,
        )
    except ImproperlyConfigured:  # a value of the wrong type: the settings check names it
        return []
    hint = "See the Kafka settings in docs/operations.md and docs/security.md."
    return [checks.Error(problem, hint=hint, id="backbone.E002") for problem in problems]


def _kafka_security_problems(*, protocol: str, mechanism: str, username: str, password: str) -> list[str]:
    if protocol and protocol not in SECURITY_PROTOCOLS:
        return [f"KAFKA_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"]
    if not protocol.startswith("SASL_"):
        if username or password or mechanism:
            return [
                "KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL is "
                f"{protocol or 'unset (PLAINTEXT)'}: set SASL_SSL (or SASL_PLAINTEXT) to send the credentials"
            ]
        return []
    problems = []
    needs = f"KAFKA_SECURITY_PROTOCOL={protocol} needs"
    if mechanism not in SASL_MECHANISMS:
        not_this = f" (not {mechanism!r})" if mechanism else ""
        problems.append(f"{needs} KAFKA_SASL_MECHANISM, one of {', '.join(SASL_MECHANISMS)}{not_this}")
    if not username or not password:
        problems.append(f"{needs} KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    return problems
