from importlib import import_module

from django.apps import AppConfig, apps


class BackboneConfig(AppConfig):
    name = "backbone"
    verbose_name = "Event backbone"

    def ready(self) -> None:
        from django.core.checks import register

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            openapi,  # noqa: F401  (registers the schema extension)
            tracing,
        )
        from .conf import settings_check

        register(settings_check)  # BACKBONE's values and keys (backbone.E010-E012, W010)

        # Spans to OpenTelemetry only when its OTEL_* variables ask for them (docs/tracing.md).
        tracing.configure()

        # Contracts and handlers register themselves on import; load every context's.
        for app_config in apps.get_app_configs():
            for module in ("events", "handlers"):
                try:
                    import_module(f"{app_config.name}.{module}")
                except ModuleNotFoundError as error:
                    if error.name != f"{app_config.name}.{module}":
                        raise
