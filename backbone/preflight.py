"""Start-up checks that name the missing service in one line instead of a traceback."""

from collections.abc import Callable, Iterable

import psycopg
import redis
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient
from django.conf import settings

from backbone.conf import backbone_settings

from .kafka import admin_config, physical_topic

HINT = "start the local services with `make services`, or point {var} at a running one"


class ServiceUnavailable(RuntimeError):
    """A service the process needs does not answer; the message is one actionable line."""


def check_postgres(timeout: float = 3.0) -> None:
    db = settings.DATABASES["default"]
    try:
        with psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"],
            dbname=db["NAME"],
            connect_timeout=max(1, int(timeout)),
        ) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ServiceUnavailable(
            f"PostgreSQL is not reachable at {db['HOST']}:{db['PORT']} ({first_line}): "
            + HINT.format(var="DATABASE_URL")
        ) from None


def check_redis(timeout: float = 3.0) -> None:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout).ping()
    except redis.RedisError as error:
        raise ServiceUnavailable(
            f"Redis is not reachable at {settings.REDIS_URL} ({error}): " + HINT.format(var="REDIS_URL")
        ) from None


def check_kafka(timeout: float = 5.0) -> None:
    refused: list[str] = []

    def on_error(error: KafkaError) -> None:
        # Wrong credentials look like "transport failure" to list_topics; the error callback
        # says what happened.
        if error.code() == KafkaError._AUTHENTICATION:
            refused.append(error.str())

    admin = AdminClient(admin_config(log_level=0, error_cb=on_error))
    try:
        admin.list_topics(timeout=timeout)
    except Exception:  # confluent-kafka raises KafkaException with a verbose transport error
        admin.poll(0)  # serves the error callback
        if refused:
            raise ServiceUnavailable(
                f"Kafka at {backbone_settings.KAFKA_BOOTSTRAP_SERVERS} refused the credentials of "
                f"KAFKA_SASL_USERNAME={backbone_settings.KAFKA_SASL_USERNAME!r} ({refused[0]}): "
                "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM"
            ) from None
        raise ServiceUnavailable(
            f"Kafka is not reachable at {backbone_settings.KAFKA_BOOTSTRAP_SERVERS}: "
            + HINT.format(var="KAFKA_BOOTSTRAP_SERVERS")
        ) from None


def check_topics(topics: Iterable[str], timeout: float = 10.0) -> None:
    """Raise ServiceUnavailable naming the topics that are missing or that this process's
    principal may not see (with an authorizer on the broker, they are left out of a listing)."""
    admin = AdminClient(admin_config())
    listed = admin.list_topics(timeout=timeout).topics
    absent = [topic for topic in topics if physical_topic(topic) not in listed]
    # Asked by name, the broker says which of them this principal is not authorized for.
    denied = [topic for topic in absent if _authorization_failed(admin, physical_topic(topic), timeout)]
    if denied:
        user = backbone_settings.KAFKA_SASL_USERNAME or "ANONYMOUS"
        raise ServiceUnavailable(
            f"Kafka user {user!r} is not authorized for topics "
            f"{', '.join(denied)}: grant them with `manage.py kafka_acls --apply` (docs/security.md)"
        )
    if absent:
        raise ServiceUnavailable(
            f"topics missing in Kafka: {', '.join(absent)}; create them with `manage.py topics`"
        )


def _authorization_failed(admin: AdminClient, name: str, timeout: float) -> bool:
    error = admin.list_topics(name, timeout=timeout).topics[name].error
    return error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


ALL_CHECKS: dict[str, Callable[[], None]] = {
    "postgres": check_postgres,
    "redis": check_redis,
    "kafka": check_kafka,
}


def require(*names: str) -> None:
    """Raise ServiceUnavailable for the first named service that does not answer."""
    for name in names or tuple(ALL_CHECKS):
        ALL_CHECKS[name]()
