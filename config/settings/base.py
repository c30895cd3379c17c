"""The shop's settings for every environment, read from the environment.

Local defaults point at the services `make services` starts on loopback, so a fresh checkout
runs without any configuration. production.py builds on these (`SHOP_ENV=production`, see
config/settings/__init__.py), test.py for pytest.
"""

import os
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from backbone.conf import from_environ as backbone_environ

# Django's generic classes (ModelAdmin[Model], QuerySet[Model], ...) subscriptable at run time,
# as the type hints of backbone/ and outbox/ write them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parents[2]


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEVELOPMENT_SECRET_KEY = "django-insecure-development-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("DEBUG", default=False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Swagger UI's files, served by the shop itself (/api/docs/ works offline, one pinned version).
    "drf_spectacular_sidecar",
    "servestatic",  # its system checks of the SERVESTATIC_* settings
    "backbone",
    "outbox",
    "orders",
    "stock",
    "payments",
    "shipments",
    "shop",  # knows every context: the demo data and tour
]

MIDDLEWARE = [
    # backbone.inline_middleware's are Django's own, their hooks run on the event loop in an
    # async chain, not in a thread and back twice each. Security, CSRF and X-Frame-Options stay
    # Django's by name: `check --deploy` looks for those names in MIDDLEWARE.
    "django.middleware.security.SecurityMiddleware",
    # 413 for oversized bodies, 400 for NUL characters: before anything reads the request.
    "backbone.request_guard.RequestGuardMiddleware",
    # Static files (admin, API docs) straight from gunicorn through ServeStatic: `make run` needs
    # no web server. Every middleware here is async capable: a waiting request holds no thread.
    "backbone.static_files.StaticFilesMiddleware",
    "backbone.correlation.CorrelationIdMiddleware",
    # W3C trace context: continues the client's `traceparent` (docs/tracing.md).
    "backbone.tracing.TraceContextMiddleware",
    "backbone.inline_middleware.SessionMiddleware",
    "backbone.inline_middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "backbone.inline_middleware.AuthenticationMiddleware",
    "backbone.inline_middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Services -----------------------------------------------------------------------------
# Defaults match scripts/services.sh (`make services`); set the variables to use others.
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://shop:shop@127.0.0.1:55432/shop")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...)")
# Django's engine, with a health check that commits nothing (backbone/postgresql/base.py).
DATABASES["default"]["ENGINE"] = "backbone.postgresql"
# The web process (config/asgi.py sets DATABASE_POOL_MAX_SIZE) serves requests on a few threads
# and thousands of waits on one: it takes connections from a psycopg pool, and returns them when a
# request (or a wait's read) lets go.
# The relay, consumers and Celery keep one persistent connection each.
if DATABASE_POOL_MAX_SIZE := int(os.environ.get("DATABASE_POOL_MAX_SIZE", "0")):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django's pool refuses persistent connections
    # The checkout checks each connection and replaces a dead one at once (a failover), where
    # the pool's own check (CONN_HEALTH_CHECKS) paused with a backoff per dead connection.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "pool": {
            "min_size": min(2, DATABASE_POOL_MAX_SIZE),
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": 10,
        },
    }
# Two test runs on one server need two test databases: unset, each run gets its own,
# test_shop_<run id> (see conftest.py).
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME") or None}
# Parameters travel apart from the SQL (server-side binding), so psycopg can prepare a statement
# once a connection has run it `prepare_threshold` times; PostgreSQL then skips parsing and
# planning for the handlers' and the API's repeated statements (docs/benchmarks.md).
DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0")
# The cache holds the rate limits' counters (backbone/throttling.py). Keys are prefixed, so two
# shops or test runs on one Redis count apart; short timeouts, so a hung Redis cannot hold up
# logins (the limits then fail open).
CACHES = {
    "default": {
        "BACKEND": "backbone.cache.RedisCache",  # one Redis client per process, not per operation
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "shop"),
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
# Tasks here are side effects that record their own outcome; storing results only costs
# Redis writes. A task whose caller needs the result says ignore_result=False.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One process of threads: the tasks wait on SMTP and PostgreSQL, and a prefork pool passed
# every task through pipes to a child process (a third of the worker's CPU per email).
CELERY_WORKER_POOL = "threads"
# Celery's Django fixup closes the database connections after every task unless this is set:
# a new PostgreSQL session (and a cold backend) per email. They are kept, and closed around
# each task only when broken or older than CONN_MAX_AGE, as around a request (config/celery.py).
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# While Redis is away, the worker reconnects forever (by default it gave up after 100 tries),
# and an enqueue fails within seconds instead of blocking its caller (a consumer) through
# several connection attempts, or for ever on a Redis that accepts and never answers (no read
# timeout by default; 5 s stays above the worker's 1 s BRPOP). backbone.aftercommit logs it.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# A queue per namespace: a test session's worker never takes a running shop's tasks.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get(
    "CELERY_TASK_DEFAULT_QUEUE", f"{os.environ.get('KAFKA_NAMESPACE', '')}celery"
)
CELERY_BEAT_SCHEDULE = {
    # Emails whose task was lost (a crash right after the commit) are sent late, not never.
    "orders-enqueue-pending-notifications": {
        "task": "orders.tasks.enqueue_pending_notifications",
        "schedule": float(os.environ.get("ORDER_NOTIFICATION_SWEEP_SECONDS", "60")),
    },
}

# --- Django -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / ".static")  # collectstatic writes here
# ServeStatic serves collectstatic's output (`make run` collects); before collectstatic has run
# (tests, a fresh checkout) it finds the files in the apps, looking them up per request.
SERVESTATIC_USE_STATIC_ROOT = True
SERVESTATIC_USE_FINDERS = True
SERVESTATIC_AUTOREFRESH = DEBUG or not STATIC_ROOT.is_dir()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# For the file backend (django.core.mail.backends.filebased.EmailBackend), e.g. in end-to-end tests.
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "shop@localhost")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's, its look-up one prepared statement (backbone/authentication.py).
        "backbone.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "backbone.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # JSON only: every client sends JSON, and the schema lists the media types parsed here, so
    # a form or multipart body is 415 rather than offered by the schema and half understood.
    "DEFAULT_PARSER_CLASSES": ["backbone.parsers.JSONParser"],
    # Every 4xx is {"detail": ..., "errors"?: ...}: see backbone/api_errors.py.
    "EXCEPTION_HANDLER": "backbone.api_errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "backbone.openapi.ShopAutoSchema",
    # Rate limits count clients by REMOTE_ADDR; behind N trusted proxies, by X-Forwarded-For.
    # 0 ignores the header, which any client can forge to dodge the limits.
    "NUM_PROXIES": int(os.environ.get("THROTTLE_NUM_PROXIES", "0")),
}
# "N/second|minute|hour|day". Login: attempts per client address, and apart per username, on
# POST /api/auth/token/ and the admin login. Orders: placements per customer.
THROTTLE_RATES = {
    "login": os.environ.get("THROTTLE_LOGIN_RATE", "10/minute"),
    "orders": os.environ.get("THROTTLE_ORDERS_RATE", "30/minute"),
}

# The largest request body accepted (413 above it, see backbone/request_guard.py). An order is
# under 2 KB even with ORDER_MAX_LINES lines; the admin's forms are smaller still.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("REQUEST_MAX_BODY_BYTES", "65536"))

SPECTACULAR_SETTINGS = {
    "TITLE": "Shop on a backbone of events",
    "DESCRIPTION": "Orders, stock, payments and shipments collaborating through Kafka events.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from drf_spectacular_sidecar's static files, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # 400/401/404/413 wherever they can happen, each with the one error body.
        "backbone.openapi.add_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation": {"()": "backbone.correlation.CorrelationIdFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s "
            "[%(correlation_id)s%(traceparent)s%(client_trace)s] %(message)s"
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["correlation"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- Event backbone -------------------------------------------------------------------------
# The library's settings, read through backbone.conf.backbone_settings: each key's type and
# default are there, and docs/operations.md says what each does. Every key may be set by the
# environment variable of its name (RELAY_BATCH_SIZE, KAFKA_NAMESPACE, ...;
# BACKBONE_EXTRA_HANDLER_MODULES, BACKBONE_ENQUEUE_COOLDOWN_SECONDS and
# CONSUMER_RETRY_SCHEDULE_<CONTEXT> for three of them); the raw strings are converted and checked
# there, so `RELAY_BATCH_SIZE=abc` is one line that names it. Below: where the shop differs.
BACKBONE = {
    # scripts/services.sh (`make services`)
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:59092",
    "WEB_WAITING_URLCONF": "config.urls_waiting",  # the views that can wait without a thread
    "SERVICE_NAME_PREFIX": "shop",  # shop-web, shop-relay, shop-<context> in traces
    "ASYNCAPI_TITLE": "Shop on a backbone of events: the events",
    **backbone_environ(),
}

# --- Orders ---------------------------------------------------------------------------------
# GET /api/orders/{id}/?wait=N waits at most this long. A wait is a coroutine of the ASGI worker
# (orders/bells.py), not a thread; one customer may hold at most ORDER_WAITS_PER_CUSTOMER at once
# across all workers (more are answered 429 with Retry-After).
ORDER_WAIT_MAX_SECONDS = float(os.environ.get("ORDER_WAIT_MAX_SECONDS", "30"))
ORDER_WAITS_PER_CUSTOMER = int(os.environ.get("ORDER_WAITS_PER_CUSTOMER", "20"))
ORDER_MAX_LINES = int(os.environ.get("ORDER_MAX_LINES", "20"))
# A notification still pending after this long lost its task (the process died right after the
# commit): the periodic sweep enqueues it again. Sending stays once per order and kind.
ORDER_NOTIFICATION_GRACE_SECONDS = float(os.environ.get("ORDER_NOTIFICATION_GRACE_SECONDS", "60"))

# --- Payments and shipments -----------------------------------------------------------------
# The payment gateway adapter: a dotted path to a payments.gateway.PaymentGateway subclass.
PAYMENT_GATEWAY = os.environ.get("PAYMENT_GATEWAY", "payments.gateway.SimulatedGateway")
# Shipments prepared this long ago are dispatched by the periodic task (staff may dispatch sooner).
SHIPMENT_AUTO_DISPATCH_SECONDS = float(os.environ.get("SHIPMENT_AUTO_DISPATCH_SECONDS", "30"))
SHIPMENT_CARRIER = os.environ.get("SHIPMENT_CARRIER", "Parcel Post")
CELERY_BEAT_SCHEDULE["shipments-dispatch-due-shipments"] = {
    "task": "shipments.tasks.dispatch_due_shipments",
    "schedule": float(os.environ.get("SHIPMENT_DISPATCH_SCAN_SECONDS", "10")),
}
