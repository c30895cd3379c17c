"""The web process's application: gunicorn runs it in uvicorn workers (Procfile `web:`).

Two lanes (backbone/web_lanes.py): a request that does not ask to wait runs Django's WSGI
handler on one of a few threads each worker keeps (BACKBONE["WEB_THREADS"]); a long-poll runs
Django's ASGI handler, a coroutine that holds no thread. Both take database connections from a pool
(DATABASE_POOL_MAX_SIZE, per worker process). Wrapped in the access log
(backbone/access_log.py): one line per request with its duration.
"""

import os
from urllib.parse import urlsplit

import django
from django.conf import settings

from backbone.access_log import AccessLog
from backbone.conf import backbone_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_POOL_MAX_SIZE", "10")
django.setup(set_prefix=False)

from backbone.web_lanes import WebApplication  # noqa: E402  (Django's handlers need the settings)

lanes = WebApplication(
    threads=backbone_settings.WEB_THREADS,
    queue_seconds=backbone_settings.WEB_QUEUE_SECONDS,
    waiting_urlconf=backbone_settings.WEB_WAITING_URLCONF or settings.ROOT_URLCONF,
    # STATIC_URL's path: those requests go to the async lane, where ServeStatic serves them.
    static_prefix=urlsplit(settings.STATIC_URL).path,
)
application = AccessLog(lanes)
