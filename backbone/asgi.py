"""The web process's application: gunicorn runs it in uvicorn workers (Procfile `web:`).

Wrapped in the access log (backbone/access_log.py): one line per request with its duration.

ASGI, so that a long-poll (GET /api/orders/{id}/?wait=N) is a coroutine that holds no worker
thread. Sync code of a request runs in a thread of asgiref's, which takes a database connection
from a pool (DATABASE_POOL_MAX_SIZE, per worker process) rather than keeping one of its own.
"""

import os

from django.core.asgi import get_asgi_application

from backbone.access_log import AccessLog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backbone.settings")
os.environ.setdefault("DATABASE_POOL_MAX_SIZE", "10")
application = AccessLog(get_asgi_application())
