"""One set of helpers for the shop's tests, so no test module writes its own.

- waiting: `wait_for` polls a condition up to a deadline instead of sleeping;
- handlers: `envelope_for` and `deliver` run a handler the way the consumer runner does;
- processes: `ShopProcesses` and `LoggedProcess` run the shop's real processes as subprocesses,
  `terminate` ends one (SIGTERM, then SIGKILL), `free_port` finds a port nothing listens on;
- threads: `run_together` races calls in threads, each on its own database connection;
- kafka: `read_topic` and `KafkaTail` read back what reached the broker, `consumer_lag` what is
  still unread, and `FakeMessage` stands in for a confluent-kafka record where a test fakes
  the client;
- memory_kafka: `MemoryBroker`, Kafka in memory behind the runner's and the relay's ports;
- broker: `ThrowawayKafka`, a broker of a test's own (to stop, or with SASL users and ACLs).

What a test's transaction emitted through the outbox is `outbox.testing.emitted` (backbone
does not depend on outbox).
"""

from .handlers import deliver, envelope_for
from .kafka import FakeMessage, KafkaRecord, KafkaTail, consumer_lag, read_topic
from .processes import (
    LoggedProcess,
    ManagedProcess,
    ShopProcesses,
    database_url,
    free_port,
    python_argv,
    terminate,
)
from .threads import run_together
from .waiting import Timeout, wait_for

__all__ = [
    "FakeMessage",
    "KafkaRecord",
    "KafkaTail",
    "LoggedProcess",
    "ManagedProcess",
    "ShopProcesses",
    "Timeout",
    "consumer_lag",
    "database_url",
    "deliver",
    "envelope_for",
    "free_port",
    "python_argv",
    "read_topic",
    "run_together",
    "terminate",
    "wait_for",
]
