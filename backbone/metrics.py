"""Prometheus metrics: the web process's `GET /metrics`, the ports of `relay` and `consume`.

Counters and histograms are kept in the processes that do the work (the relay, the consumer
runner, the Orders services). Values that live in PostgreSQL (rows waiting, dead letters
pending) are read when scraped, by collectors: they stay true while the process that would
otherwise report them is down, and cost nothing between scrapes.

Under gunicorn each worker is a process of its own: `PROMETHEUS_MULTIPROC_DIR` (set by
config/gunicorn_config.py) makes prometheus-client keep their values in files that
`/metrics` adds up, whichever worker answers. See docs/metrics.md for every name.
"""

import logging
import os
import platform
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from backbone.conf import backbone_settings

from .kafka import group_id
from .subscriptions import subscriptions

log = logging.getLogger(__name__)

# Each query runs inside a scrape: it must answer quickly or give up, never hold the scrape.
SCRAPE_STATEMENT_TIMEOUT_MS = 2000


def query_rows(sql: str, params: Sequence[str] = ()) -> list[tuple[object, ...]] | None:
    """Rows of `sql` on Django's connection of this thread; None (logged) while PostgreSQL is
    unreachable, so a scrape reports what it can instead of failing."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {SCRAPE_STATEMENT_TIMEOUT_MS}")
            cursor.execute(sql, list(params))
            rows = [tuple(row) for row in cursor.fetchall()]
            cursor.execute("SET statement_timeout = DEFAULT")
            return rows
    except DatabaseError as error:
        log.warning("metrics: PostgreSQL query failed, value left out of this scrape: %s", error)
        connection.close()  # the next scrape connects afresh
        return None


class DeadLetterCollector(Collector):
    """Dead letters pending and records parked per consumer group (one per context: the label
    is `group`, as on every consumer metric), from the tables."""

    def __init__(self, context: str | None = None) -> None:
        self.context = context  # a consumer reports its own context; the web process every one

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "backbone_dead_letters_pending",
            "Dead letters waiting to be replayed or discarded, per consumer group.",
            labels=["group"],
        )
        parked = GaugeMetricFamily(
            "backbone_parked_records",
            "Records parked behind a pending dead letter of their key, per consumer group.",
            labels=["group"],
        )
        contexts = [self.context] if self.context else subscriptions.contexts()
        groups = [group_id(context) for context in contexts]
        where, params = ("AND consumer_group = %s", groups) if self.context else ("", [])
        rows = query_rows(
            "SELECT consumer_group, count(*) FROM dead_letter "
            f"WHERE status = 'pending' {where} GROUP BY consumer_group",
            params,
        )
        if rows is not None:
            # Zero is a value, not a missing series: every known context's group is reported.
            counts = dict.fromkeys(groups, 0.0)
            counts.update({str(name): float(str(count)) for name, count in rows})
            for name, pending_count in sorted(counts.items()):
                pending.add_metric([name], pending_count)
        for group, parked_count in (
            query_rows("SELECT consumer_group, count(*) FROM parked_record GROUP BY consumer_group") or []
        ):
            parked.add_metric([str(group)], float(str(parked_count)))
        yield pending
        yield parked


def serve(port: int, *, collectors: Iterable[Collector] = ()) -> None:
    """Serve the process's metrics on `port` from a background thread (relay and consume)."""
    from prometheus_client import start_http_server

    REGISTRY.register(BuildInfoCollector())
    REGISTRY.register(_ClosingConnection(list(collectors)))
    start_http_server(port, addr=backbone_settings.METRICS_ADDRESS)
    log.info("metrics on http://%s:%s/metrics", backbone_settings.METRICS_ADDRESS, port)


def scrape(collectors: Iterable[Collector]) -> HttpResponse:
    """A web process's answer to a scrape: every worker's values, and `collectors` (those that
    read PostgreSQL). The web's `GET /metrics` is outbox.metrics.metrics_view, which knows them
    all: the dead letters' (here) and the outbox's."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:  # one process (runserver, tests): its own values
        registry.register(_ProcessRegistry())
    registry.register(BuildInfoCollector())
    for collector in collectors:
        registry.register(collector)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class BuildInfoCollector(Collector):
    """`shop_build_info` (always 1): which release and Python a process runs, to join on."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "shop_build_info",
            "The shop's version (pyproject.toml) and the Python it runs on; always 1.",
            labels=["version", "python_version"],
        )
        info.add_metric([shop_version(), platform.python_version()], 1.0)
        yield info


@cache
def shop_version() -> str:
    """The installed distribution's version, else pyproject.toml's (the shop runs from a
    checkout, not installed); "unknown" when neither can be read."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        pass
    try:
        with (Path(settings.BASE_DIR) / "pyproject.toml").open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


DISTRIBUTION = "shop-on-events"


class _ProcessRegistry(Collector):
    """The process's global registry, as one collector of the per-scrape registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class _ClosingConnection(Collector):
    """Database collectors of a metrics port: its server runs each scrape in a new thread, which
    opens a Django connection of its own; closed here, or each scrape would leave one behind."""

    def __init__(self, collectors: list[Collector]) -> None:
        self._collectors = collectors

    def describe(self) -> list[Metric]:
        return []  # registering must not query PostgreSQL; the names never clash

    def collect(self) -> Iterator[Metric]:
        try:
            for collector in self._collectors:
                yield from collector.collect()
        finally:
            connection.close()
