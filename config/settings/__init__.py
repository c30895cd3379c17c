"""The shop's settings: `DJANGO_SETTINGS_MODULE=config.settings` (what manage.py, the web and
Celery default to) picks them by SHOP_ENV, so the environment stays the one switch.

- `SHOP_ENV=development` (the default): base.py, with local defaults for every service.
- `SHOP_ENV=production`: production.py, base.py plus what `manage.py check --deploy` asks for.

pytest runs config.settings.test (pyproject.toml).
"""

import os

from django.core.exceptions import ImproperlyConfigured

SHOP_ENV = os.environ.get("SHOP_ENV", "development")
if SHOP_ENV == "production":
    from .production import *  # noqa: F403
elif SHOP_ENV == "development":
    from .base import *  # noqa: F403
else:
    raise ImproperlyConfigured(f"SHOP_ENV must be 'development' or 'production', not {SHOP_ENV!r}")
