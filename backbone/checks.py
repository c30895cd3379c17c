"""System checks: the architecture's rules, verified at start-up."""

from typing import Any

from django.core import checks

from .contracts import registry
from .topics import TOPICS


@checks.register()
def single_writer_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every registered contract lives in the context that owns its topic."""
    errors = []
    for cls in registry.all():
        spec = TOPICS.get(cls.topic)
        if spec is None or spec.owner != cls.context:
            owner = spec.owner if spec else "nobody (unknown topic)"
            errors.append(
                checks.Error(
                    f"{cls.type_name} is declared in context {cls.context!r} "
                    f"but topic {cls.topic!r} is owned by {owner}",
                    hint="Declare an event in the events.py of the context that owns its topic.",
                    obj=cls,
                    id="backbone.E001",
                )
            )
    return errors
