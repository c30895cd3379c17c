"""The shop's Django project: settings, URLs, the web and Celery applications, and the web
server's configuration. The event backbone itself is the `backbone` and `outbox` library."""

from .celery import app as celery_app

__all__ = ("celery_app",)
