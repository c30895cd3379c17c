"""The shop's settings with the plain shop app and its one route, `bench/plain/orders/`.

Passed as DJANGO_SETTINGS_MODULE to the Procfile's `web:` command, so the baseline runs behind
the same server, workers and middleware as the shop's API (and to `manage.py migrate
plain_shop`, which creates its tables in the bench database).
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.plain_shop"]
ROOT_URLCONF = "bench.plain_shop.urls"
