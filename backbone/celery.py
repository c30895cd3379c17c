"""The Celery application: `celery -A backbone worker` (and `beat`) run it."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backbone.settings")

app = Celery("backbone")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
