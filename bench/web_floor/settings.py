"""The shop's settings with one route more, `bench/trivial/`: the stack floor.

Passed as DJANGO_SETTINGS_MODULE to the Procfile's `web:` command (config/asgi.py only sets
a default), so the floor runs behind the same server, workers and middleware as the shop's API,
and the shop's own urlconf gains no bench route.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.web_floor.urls"
