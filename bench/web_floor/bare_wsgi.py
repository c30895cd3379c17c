"""The bare floor's WSGI application (DJANGO_SETTINGS_MODULE=bench.web_floor.bare_settings)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.web_floor.bare_settings")
application = get_wsgi_application()
