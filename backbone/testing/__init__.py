"""One set of helpers for the shop's tests, so no test module writes its own.

- waiting: `wait_for` polls a condition up to a deadline instead of sleeping;
- handlers: `envelope_for` and `deliver` run a handler the way the consumer runner does;
- processes: `ShopProcesses` and `LoggedProcess` run the shop's real processes as subprocesses;
- threads: `run_together` races calls in threads, each on its own database connection;
- kafka: `KafkaTail` reads back what reached the broker, `consumer_lag` what is still unread,
  and `FakeMessage` stands in for a confluent-kafka record where a test fakes the client.

What a test's transaction emitted through the outbox is `outbox.testing.emitted` (backbone
does not depend on outbox).
"""

from .handlers import deliver, envelope_for
from .kafka import FakeMessage, KafkaRecord, KafkaTail, consumer_lag
from .processes import LoggedProcess, ManagedProcess, ShopProcesses, database_url, free_port, python_argv
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
    "run_together",
    "wait_for",
]
