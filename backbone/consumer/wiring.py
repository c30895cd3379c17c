"""The one place a real consumer runner is wired: a Kafka consumer and a `.dlq` publisher."""

from collections.abc import Sequence
from importlib import import_module

from confluent_kafka import Consumer

from backbone.conf import backbone_settings

from ..deadletters import KafkaDeadLetterPublisher
from ..heartbeat import Heartbeat
from ..kafka import consumer_config, group_id
from .options import RunnerOptions
from .runner import ConsumerRunner


def load_handler_modules(extra: Sequence[str] = ()) -> None:
    """Import handler modules besides each context's handlers.py (settings + `--handlers`)."""
    for module in [*backbone_settings.EXTRA_HANDLER_MODULES, *extra]:
        import_module(module)


def create_runner(*, context: str, options: RunnerOptions) -> ConsumerRunner:
    """The one place a real runner is wired: a Kafka consumer and a `.dlq` publisher."""
    group = group_id(context)
    consumer = Consumer(consumer_config(group, **{"client.id": f"consume-{context}"}))
    return ConsumerRunner(
        context=context,
        group=group,
        consumer=consumer,
        publisher=KafkaDeadLetterPublisher.create(),
        options=options,
        heartbeat=Heartbeat(role="consumer", name=context),
    )
