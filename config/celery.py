"""The Celery application: `celery -A config worker` (and `beat`) run it."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_broken_or_old_connections(**_: Any) -> None:
    """What Django does around each request, around each task: a connection that broke (a
    PostgreSQL restart) or outlived CONN_MAX_AGE is closed, and the next query checks the new
    one first (CONN_HEALTH_CHECKS). Celery no longer closes them all (CELERY_DB_REUSE_MAX)."""
    close_old_connections()
