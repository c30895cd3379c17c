"""`override_backbone(KEY=value, ...)`: override_settings for some keys of BACKBONE.

`override_settings(BACKBONE={...})` replaces the whole dict, so every key left out falls back to
its library default (a test's Kafka namespace among them). This keeps the others as they are.
"""

from typing import Any

from django.conf import settings
from django.test import override_settings


class override_backbone(override_settings):
    """Decorator or context manager, as override_settings: these BACKBONE keys, the rest unchanged.
    The current BACKBONE is read when the override starts, not when it is written."""

    def __init__(self, **values: Any) -> None:
        self.values = values
        super().__init__()

    def enable(self) -> None:
        self.options = {"BACKBONE": {**getattr(settings, "BACKBONE", {}), **self.values}}
        super().enable()
