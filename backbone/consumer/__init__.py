"""The consumer runner behind `manage.py consume <context>`, split by role:

- runner.py: the loop: poll, apply, retry a failing record with backoff, wait out outages
  (its docstring states the guarantees: effectively once, offsets after the commit);
- batch.py: one batch in one transaction (inbox rows, handlers, parked records, dead letters);
- offsets.py: offset commits after the database commit, rebalance callbacks, lag;
- budget.py: the dead-letter limit that stops a runner whose handler is broken;
- options.py, stats.py: what the runner is told and what it reports;
- protocol.py: the part of the Kafka consumer the runner uses (tests pass fakes);
- wiring.py: the one place a real runner is built.
"""

from .budget import DeadLetterBudget, DeadLetterLimitReached
from .options import RunnerOptions, parse_schedule
from .protocol import KafkaConsumer
from .runner import ConsumerRunner
from .stats import RunStats
from .wiring import create_runner, load_handler_modules

__all__ = [
    "ConsumerRunner",
    "DeadLetterBudget",
    "DeadLetterLimitReached",
    "KafkaConsumer",
    "RunStats",
    "RunnerOptions",
    "create_runner",
    "load_handler_modules",
    "parse_schedule",
]
