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
    "django.middleware.security.SecurityMiddleware",
    # 413 for oversized bodies, 400 for NUL characters: before anything reads the request.
    "backbone.request_guard.RequestGuardMiddleware",
    # Static files (admin, API docs) straight from gunicorn through ServeStatic: `make run` needs
    # no web server. Every middleware here is async capable: a waiting request holds no thread.
    "backbone.static_files.StaticFilesMiddleware",
    "backbone.correlation.CorrelationIdMiddleware",
    # W3C trace context: continues the client's `traceparent` (docs/tracing.md).
    "backbone.tracing.TraceContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
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
KAFKA_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")
# Optional TLS and SASL for every Kafka client (docs/security.md): one principal per process role,
# so the broker's ACLs can tell the relay (the only writer of event topics) from the consumers.
KAFKA_SECURITY_PROTOCOL = os.environ.get("KAFKA_SECURITY_PROTOCOL", "").upper()
KAFKA_SASL_MECHANISM = os.environ.get("KAFKA_SASL_MECHANISM", "")
KAFKA_SASL_USERNAME = os.environ.get("KAFKA_SASL_USERNAME", "")
KAFKA_SASL_PASSWORD = os.environ.get("KAFKA_SASL_PASSWORD", "")
KAFKA_SSL_CA_LOCATION = os.environ.get("KAFKA_SSL_CA_LOCATION", "")

# The cache holds the rate limits' counters (backbone/throttling.py). Keys are prefixed, so two
# shops or test runs on one Redis count apart; short timeouts, so a hung Redis cannot hold up
# logins (the limits then fail open).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
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
# After a failed enqueue, later ones within this many seconds are skipped without trying.
BACKBONE_ENQUEUE_COOLDOWN_SECONDS = float(os.environ.get("BACKBONE_ENQUEUE_COOLDOWN_SECONDS", "15"))
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
        "rest_framework.authentication.TokenAuthentication",
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
KAFKA_NAMESPACE = os.environ.get("KAFKA_NAMESPACE", "")
KAFKA_TOPIC_PARTITIONS = int(os.environ.get("KAFKA_TOPIC_PARTITIONS", "3"))
KAFKA_REPLICATION_FACTOR = int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1"))
OUTBOX_RETENTION_HOURS = float(os.environ.get("OUTBOX_RETENTION_HOURS", "72"))
# The compact record of each published event (no payload): stories and `manage.py audit`.
EVENT_LOG_RETENTION_DAYS = float(os.environ.get("EVENT_LOG_RETENTION_DAYS", "400"))
# Sizes end to end (docs/design.md, "Event size"): emit() refuses an event whose JSON is larger
# and consumers dead-letter such a record at once; a dead letter's `.dlq` copy carries at most
# this much of the value (the table keeps it all). Topics accept record batches of up to
# KAFKA_TOPIC_MAX_MESSAGE_BYTES; producers build batches of at most KAFKA_PRODUCER_MAX_BYTES.
EVENT_MAX_BYTES = int(os.environ.get("EVENT_MAX_BYTES", str(256 * 1024)))
KAFKA_TOPIC_MAX_MESSAGE_BYTES = 1024 * 1024
KAFKA_PRODUCER_MAX_BYTES = 1_000_000
# How long a producer (dead-letter publisher, tools) tries to deliver a record before giving
# up (`message.timeout.ms`). The relay never gives up (its own setting, 0); tests lower this to
# prove that an outage longer than it loses and duplicates nothing.
KAFKA_PRODUCER_TIMEOUT_MS = int(os.environ.get("KAFKA_PRODUCER_TIMEOUT_MS", "30000"))
# Relay (`manage.py relay`; its options override these).
RELAY_BATCH_SIZE = int(os.environ.get("RELAY_BATCH_SIZE", "2000"))
# Relay shards (docs/relay.md): rows split by key hash, one leader per shard; the same number
# for every relay of a database.
RELAY_SHARDS = int(os.environ.get("RELAY_SHARDS", "1"))
RELAY_POLL_INTERVAL_SECONDS = float(os.environ.get("RELAY_POLL_INTERVAL_SECONDS", "5"))
RELAY_STATUS_INTERVAL_SECONDS = float(os.environ.get("RELAY_STATUS_INTERVAL_SECONDS", "60"))
RELAY_CLEANUP_INTERVAL_SECONDS = float(os.environ.get("RELAY_CLEANUP_INTERVAL_SECONDS", "300"))
RELAY_MAX_BACKOFF_SECONDS = float(os.environ.get("RELAY_MAX_BACKOFF_SECONDS", "30"))
# A standby ends the session of a leader whose lock session ran no statement for this long
# while rows of its shard wait, and takes over (docs/relay.md, "A frozen leader"); 0: never.
RELAY_TAKEOVER_AFTER_SECONDS = float(os.environ.get("RELAY_TAKEOVER_AFTER_SECONDS", "60"))

# Consumer runner (`manage.py consume <context>`; its options override these).
CONSUMER_BATCH_SIZE = int(os.environ.get("CONSUMER_BATCH_SIZE", "500"))
CONSUMER_MAX_ATTEMPTS = int(os.environ.get("CONSUMER_MAX_ATTEMPTS", "4"))
CONSUMER_RETRY_DELAY_SECONDS = float(os.environ.get("CONSUMER_RETRY_DELAY_SECONDS", "0.2"))
# Past this many dead letters within the window the consumer stops: a bug, not bad records.
CONSUMER_DEAD_LETTER_LIMIT = int(os.environ.get("CONSUMER_DEAD_LETTER_LIMIT", "50"))
CONSUMER_DEAD_LETTER_WINDOW_SECONDS = float(os.environ.get("CONSUMER_DEAD_LETTER_WINDOW_SECONDS", "600"))
# Seconds before each retry of a failing record, e.g. "1,5,30,120,600": it waits in the
# dead_letter table (status retrying), not in the consumer, and its key waits behind it (see
# backbone/deadletters/retry.py). CONSUMER_RETRY_SCHEDULE_<CONTEXT> sets one context's;
# empty: CONSUMER_MAX_ATTEMPTS quick retries in the consumer.
CONSUMER_RETRY_SCHEDULE = os.environ.get("CONSUMER_RETRY_SCHEDULE", "")
CONSUMER_RETRY_SCHEDULES = {
    name.removeprefix("CONSUMER_RETRY_SCHEDULE_").lower(): value
    for name, value in os.environ.items()
    if name.startswith("CONSUMER_RETRY_SCHEDULE_")
}
CONSUMER_STATUS_INTERVAL_SECONDS = float(os.environ.get("CONSUMER_STATUS_INTERVAL_SECONDS", "30"))
# `manage.py status` (docs/operations-console.md): relay and consumers refresh a heartbeat row
# this often; one older than the stale limit counts as a dead process. `status --check` reports
# a problem past each threshold.
HEARTBEAT_INTERVAL_SECONDS = float(os.environ.get("HEARTBEAT_INTERVAL_SECONDS", "5"))
STATUS_HEARTBEAT_STALE_SECONDS = float(os.environ.get("STATUS_HEARTBEAT_STALE_SECONDS", "30"))
STATUS_MAX_BACKLOG_AGE_SECONDS = float(os.environ.get("STATUS_MAX_BACKLOG_AGE_SECONDS", "60"))
# A relay leader whose lock session ran no statement for this long while rows wait is stalled.
STATUS_MAX_LEADER_IDLE_SECONDS = float(os.environ.get("STATUS_MAX_LEADER_IDLE_SECONDS", "45"))
STATUS_MAX_LAG = int(os.environ.get("STATUS_MAX_LAG", "10000"))
STATUS_MAX_PENDING_DEAD_LETTERS = int(os.environ.get("STATUS_MAX_PENDING_DEAD_LETTERS", "0"))
# Handler modules to load besides each context's handlers.py (tests, plug-ins).
BACKBONE_EXTRA_HANDLER_MODULES = env_list("BACKBONE_EXTRA_HANDLER_MODULES")

# Prometheus metrics (docs/metrics.md): `relay --metrics-port` and `consume --metrics-port` listen
# on this address (0.0.0.0 in containers); GET /metrics on the web process needs no port.
METRICS_ADDRESS = os.environ.get("METRICS_ADDRESS", "127.0.0.1")

# --- Orders ---------------------------------------------------------------------------------
# GET /api/orders/{id}/?wait=N waits at most this long. A wait is a coroutine of the ASGI worker
# (orders/bells.py), not a thread; one customer may hold at most ORDER_WAITS_PER_CUSTOMER at once
# across all workers (more are answered 429 with Retry-After).
# The web's direct lane (backbone/web_lanes.py): threads per worker process, each serving one
# request at a time, and how long a request may wait for one before a 503 with Retry-After.
WEB_THREADS = int(os.environ.get("WEB_THREADS", "4"))
WEB_QUEUE_SECONDS = float(os.environ.get("WEB_QUEUE_SECONDS", "5"))
WEB_WAITING_URLCONF = "config.urls_waiting"  # the views that can wait without a thread
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
