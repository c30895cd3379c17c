"""The library's settings: one Django setting, `BACKBONE = {...}`, read through `backbone_settings`.

    BACKBONE = {"KAFKA_BOOTSTRAP_SERVERS": "kafka1:9092", "RELAY_BATCH_SIZE": 500}

    from backbone.conf import backbone_settings
    backbone_settings.RELAY_BATCH_SIZE  # 500; a key left out has its default below

Every key, its type and its default are written once, in `BackboneSettings`. Values are
converted as pydantic does (the string "500" is the integer 500), so a project may pass raw
environment strings (`from_environ()`), and a value that does not convert is reported under its
own key: by the system check backbone.E010 at start-up (`manage.py check`, and every command
that runs the checks), and as ImproperlyConfigured when code reads it (the web and Celery
processes run no checks). Unknown keys are reported by backbone.E011, as typos are likely.

The object follows `override_settings(BACKBONE=...)`, the pytest-django `settings` fixture and a
plain `settings.BACKBONE = {...}`: it is read again whenever the BACKBONE object is replaced (not
on setting_changed, which an assignment does not send). Replace the dict, never change it in place.
"""

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError


@dataclass(frozen=True)
class Expect:
    """What a key's value must be, as its error message says it (`must be <text>`)."""

    text: str
    secret: bool = False  # the message leaves the value out
    each: str = ""  # for a dict: what each of its values must be


def _comma_separated(value: object) -> object:
    """ "a, b" -> ["a", "b"]: a list setting may come from one environment variable."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _schedule(value: object) -> object:
    """ "1,5,30" -> [1.0, 5.0, 30.0] (pydantic checks each); "" -> [] (no schedule)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


Text = Annotated[str, Expect("a string")]
Secret = Annotated[str, Expect("a string", secret=True)]
PositiveInt = Annotated[int, Field(gt=0), Expect("a positive integer")]
Count = Annotated[int, Field(ge=0), Expect("an integer, 0 or more")]
Seconds = Annotated[float, Field(gt=0), Expect("a positive number of seconds")]
SecondsOrZero = Annotated[float, Field(ge=0), Expect("a number of seconds, 0 or more")]
Hours = Annotated[float, Field(gt=0), Expect("a positive number of hours")]
Days = Annotated[float, Field(gt=0), Expect("a positive number of days")]
DottedPaths = Annotated[
    tuple[str, ...],
    BeforeValidator(_comma_separated),
    Expect("a list of dotted paths (or one comma-separated string)"),
]
Schedule = Annotated[
    tuple[Annotated[float, Field(ge=0)], ...],
    BeforeValidator(_schedule),
    Expect("seconds separated by commas, none negative, e.g. '1,5,30' (empty: no schedule)"),
]
Schedules = Annotated[
    dict[str, Schedule],
    Expect(
        "a dict of context name -> retry schedule, e.g. {'stock': '1,5,30'}",
        each="seconds separated by commas, none negative, e.g. '1,5,30' (empty: no schedule)",
    ),
]
Protocol = Annotated[str, BeforeValidator(_upper), Expect("a string")]


class BackboneSettings(BaseModel):
    """Every key of `BACKBONE`, with its default. docs/operations.md says what each one does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Kafka clients (backbone/kafka.py, docs/security.md)
    KAFKA_BOOTSTRAP_SERVERS: Text = "localhost:9092"
    # Prefix of every topic and consumer group name: two deployments (or test runs) share a cluster.
    KAFKA_NAMESPACE: Text = ""
    KAFKA_SECURITY_PROTOCOL: Protocol = ""  # empty: librdkafka's default, PLAINTEXT
    KAFKA_SASL_MECHANISM: Text = ""
    KAFKA_SASL_USERNAME: Text = ""
    KAFKA_SASL_PASSWORD: Secret = ""
    KAFKA_SSL_CA_LOCATION: Text = ""
    KAFKA_TOPIC_PARTITIONS: PositiveInt = 3
    KAFKA_REPLICATION_FACTOR: PositiveInt = 1
    # Record batches a topic accepts; producers build batches of at most KAFKA_PRODUCER_MAX_BYTES.
    KAFKA_TOPIC_MAX_MESSAGE_BYTES: PositiveInt = 1024 * 1024
    KAFKA_PRODUCER_MAX_BYTES: PositiveInt = 1_000_000
    # How long a producer other than the relay's tries to deliver a record (`message.timeout.ms`).
    KAFKA_PRODUCER_TIMEOUT_MS: Count = 30_000

    # Events and the outbox
    EVENT_MAX_BYTES: PositiveInt = 256 * 1024
    OUTBOX_RETENTION_HOURS: Hours = 72
    EVENT_LOG_RETENTION_DAYS: Days = 400

    # Relay (`manage.py relay`, whose options override these)
    RELAY_BATCH_SIZE: PositiveInt = 2000
    RELAY_SHARDS: PositiveInt = 1
    RELAY_POLL_INTERVAL_SECONDS: Seconds = 5
    # After a commit wakes it, the relay waits this long for the commits right behind it
    # (an order's chain commits every few ms at real rates): one scan, produce and mark for all.
    RELAY_LINGER_SECONDS: SecondsOrZero = 0.0  # off: 5 ms raised relay p99 11 -> 26 ms
    RELAY_STATUS_INTERVAL_SECONDS: Seconds = 60
    RELAY_CLEANUP_INTERVAL_SECONDS: Seconds = 300
    RELAY_MAX_BACKOFF_SECONDS: Seconds = 30
    RELAY_TAKEOVER_AFTER_SECONDS: SecondsOrZero = 60  # 0: a standby never takes over

    # Consumer runner (`manage.py consume <context>`, whose options override these)
    CONSUMER_BATCH_SIZE: PositiveInt = 500
    CONSUMER_MAX_ATTEMPTS: PositiveInt = 4
    CONSUMER_RETRY_DELAY_SECONDS: SecondsOrZero = 0.2
    CONSUMER_DEAD_LETTER_LIMIT: Count = 50
    CONSUMER_DEAD_LETTER_WINDOW_SECONDS: SecondsOrZero = 600  # 0: the whole run
    CONSUMER_RETRY_SCHEDULE: Schedule = ()
    CONSUMER_RETRY_SCHEDULES: Schedules = Field(default_factory=dict)  # per context, over the above
    CONSUMER_STATUS_INTERVAL_SECONDS: Seconds = 30
    # Handler modules to load besides each app's handlers.py (tests, plug-ins).
    EXTRA_HANDLER_MODULES: DottedPaths = ()

    # Heartbeats and `manage.py status --check`
    HEARTBEAT_INTERVAL_SECONDS: Seconds = 5
    STATUS_HEARTBEAT_STALE_SECONDS: Seconds = 30
    STATUS_MAX_BACKLOG_AGE_SECONDS: Seconds = 60
    STATUS_MAX_LEADER_IDLE_SECONDS: Seconds = 45
    STATUS_MAX_LAG: Count = 10_000
    STATUS_MAX_PENDING_DEAD_LETTERS: Count = 0

    # After a failed Celery enqueue, later ones within this many seconds are skipped (aftercommit).
    ENQUEUE_COOLDOWN_SECONDS: SecondsOrZero = 15

    # Prometheus: where `relay`/`consume --metrics-port` listen.
    METRICS_ADDRESS: Text = "127.0.0.1"

    # The web's lanes (backbone/web_lanes.py): threads per worker process, how long a request
    # may wait for one (then 503), and the urlconf of the views that wait without a thread
    # (empty: ROOT_URLCONF).
    WEB_THREADS: PositiveInt = 4
    WEB_QUEUE_SECONDS: Seconds = 5
    WEB_WAITING_URLCONF: Text = ""

    # Tracing: a process's default service.name is <prefix>-web, <prefix>-relay, <prefix>-<context>...
    SERVICE_NAME_PREFIX: Text = "backbone"

    # The AsyncAPI document's title (`manage.py contracts asyncapi`, /api/asyncapi/).
    ASYNCAPI_TITLE: Text = "Events"


KEYS = tuple(BackboneSettings.model_fields)
# Keys whose environment variable is not just the key (from_environ).
_ENVIRON_NAMES = {
    "EXTRA_HANDLER_MODULES": "BACKBONE_EXTRA_HANDLER_MODULES",
    "ENQUEUE_COOLDOWN_SECONDS": "BACKBONE_ENQUEUE_COOLDOWN_SECONDS",
}
_SCHEDULE_VARIABLE = "CONSUMER_RETRY_SCHEDULE_"


def from_environ(environ: Mapping[str, str] | None = None, *, prefix: str = "") -> dict[str, Any]:
    """The BACKBONE keys set in the environment, as raw strings (validated when read, under
    their names): `<prefix>RELAY_BATCH_SIZE`, ... (`BACKBONE_EXTRA_HANDLER_MODULES` and
    `BACKBONE_ENQUEUE_COOLDOWN_SECONDS` for the two keys that would read oddly without it), and
    one context's retry schedule as `<prefix>CONSUMER_RETRY_SCHEDULE_<CONTEXT>`."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for key in KEYS:
        name = prefix + _ENVIRON_NAMES.get(key, key)
        if key != "CONSUMER_RETRY_SCHEDULES" and name in environ:
            values[key] = environ[name]
    schedules = {
        name.removeprefix(prefix + _SCHEDULE_VARIABLE).lower(): value
        for name, value in environ.items()
        if name.startswith(prefix + _SCHEDULE_VARIABLE)
    }
    if schedules:
        values["CONSUMER_RETRY_SCHEDULES"] = schedules
    return values


@dataclass(frozen=True)
class Problem:
    """One thing wrong with BACKBONE, for the system check."""

    id: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class _Loaded:
    source: object  # the BACKBONE object these were read from
    values: BackboneSettings  # defaults in place of the invalid values
    invalid: dict[str, str]  # key -> message; reading the key raises ImproperlyConfigured
    problems: tuple[Problem, ...]


def _load(source: object) -> _Loaded:
    if source is None:
        return _Loaded(source, BackboneSettings(), {}, ())
    if not isinstance(source, Mapping):
        message = f"BACKBONE must be a dict of the backbone's settings, got {type(source).__name__}"
        return _Loaded(
            source, BackboneSettings(), dict.fromkeys(KEYS, message), (Problem("backbone.E012", message),)
        )
    unknown = [key for key in source if key not in BackboneSettings.model_fields]
    known = {key: value for key, value in source.items() if key in BackboneSettings.model_fields}
    invalid: dict[str, str] = {}
    try:
        values = BackboneSettings.model_validate(known)
    except ValidationError as error:
        invalid = _messages(error, known)
        values = BackboneSettings.model_validate({k: v for k, v in known.items() if k not in invalid})
    problems = [Problem("backbone.E010", message) for message in invalid.values()]
    problems.extend(_unknown(key) for key in unknown)
    return _Loaded(source, values, invalid, tuple(problems))


def _messages(error: ValidationError, source: Mapping[str, Any]) -> dict[str, str]:
    """Key -> `BACKBONE["KEY"] must be <expected>, got <value>`; the first error of each key.
    The value is the one given (a whole schedule, not the one delay pydantic refused), and
    within a dict (CONSUMER_RETRY_SCHEDULES) the entry's."""
    messages: dict[str, str] = {}
    for item in error.errors(include_url=False):
        key = str(item["loc"][0])
        if key in messages:
            continue
        expect = _expectation(key)
        value = source[key]
        where = f'BACKBONE["{key}"]'
        entry = item["loc"][1] if len(item["loc"]) > 1 else None
        if isinstance(value, Mapping) and isinstance(entry, str) and expect.each:
            where, value, expect = f'{where}["{entry}"]', value[entry], Expect(expect.each)
        got = f"a value of type {type(value).__name__}" if expect.secret else repr(value)
        messages[key] = f"{where} must be {expect.text}, got {got}"
    return messages


def _expectation(key: str) -> Expect:
    found = [item for item in BackboneSettings.model_fields[key].metadata if isinstance(item, Expect)]
    return found[0] if found else Expect("valid")


def _unknown(key: object) -> Problem:
    close = difflib.get_close_matches(str(key), KEYS, n=1)
    hint = f'Did you mean BACKBONE["{close[0]}"]?' if close else "docs/operations.md lists the keys."
    return Problem(
        "backbone.E011", f"BACKBONE[{key!r}] is not a setting of the backbone".replace("'", '"'), hint
    )


class _Settings:
    """`backbone_settings`: the current BACKBONE's values as attributes, each with its default."""

    def __init__(self) -> None:
        self._loaded: _Loaded | None = None

    def __getattr__(self, name: str) -> Any:
        if name not in BackboneSettings.model_fields:
            raise AttributeError(f"{name!r} is not a setting of the backbone (backbone/conf.py)")
        loaded = self._current()
        if name in loaded.invalid:
            raise ImproperlyConfigured(loaded.invalid[name])
        return getattr(loaded.values, name)

    def problems(self) -> tuple[Problem, ...]:
        return self._current().problems

    def _current(self) -> _Loaded:
        source = getattr(django_settings, "BACKBONE", None)
        loaded = self._loaded
        # BACKBONE replaced since it was read (override_settings, or an assignment, which sends
        # no setting_changed): read it again. A dict changed in place is not noticed.
        if loaded is None or loaded.source is not source:
            loaded = self._loaded = _load(source)
        return loaded


if TYPE_CHECKING:  # typed as the model, so mypy knows every key's type
    backbone_settings: BackboneSettings
else:
    backbone_settings = _Settings()


def field_from_setting(name: str) -> Any:
    """A dataclass field whose default is BACKBONE[name], read when an instance is made (not at
    import), so options objects (RelayOptions, RunnerOptions) keep no copy of the defaults and
    follow override_settings."""
    if name not in BackboneSettings.model_fields:
        raise ValueError(f"{name!r} is not a setting of the backbone")
    return field(default_factory=lambda: getattr(backbone_settings, name))


def _settings_object() -> _Settings:
    return backbone_settings  # type: ignore[return-value]  # the proxy, typed as the model above


# Library settings that were top-level Django settings before BACKBONE: still set, they would be
# ignored without a word.
_FORMER_NAMES = {_ENVIRON_NAMES.get(key, key): key for key in KEYS}


def settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """BACKBONE's values have the types and ranges expected, and every key is one of ours."""
    messages: list[checks.CheckMessage] = [
        checks.Error(problem.message, hint=problem.hint or _HINT, id=problem.id)
        for problem in _settings_object().problems()
    ]
    messages.extend(
        checks.Warning(
            f"{name} is a top-level setting, which the backbone does not read",
            hint=f'Set BACKBONE["{key}"] instead (docs/backbone.md, "Settings").',
            id="backbone.W010",
        )
        for name, key in _FORMER_NAMES.items()
        if hasattr(django_settings, name)
    )
    return messages


_HINT = 'See the settings in docs/operations.md; docs/backbone.md, "Settings", says how they are read.'
