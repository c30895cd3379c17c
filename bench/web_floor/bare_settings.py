"""A bare Django: no app, no middleware, no database, one route. The floor the stack is
compared with, served by gunicorn's sync workers on bare_wsgi.application."""

SECRET_KEY = "bench-only, serves one constant JSON body"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.web_floor.bare_urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
