"""Celery tasks of the backbone itself."""

import os

from celery import shared_task


@shared_task(ignore_result=False)
def worker_pid() -> int:
    """Answer with the worker's process id: proves a task ran in a real worker."""
    return os.getpid()
