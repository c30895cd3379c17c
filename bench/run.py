"""`python -m bench`: set up the bench database and namespace, run the benchmarks, report.

python -m bench                          # quick mode, every benchmark (a few minutes)
python -m bench --mode full              # the longer runs
python -m bench --only relay,latency     # a subset
"""

import argparse
import importlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.environment import (
    Processes,
    database_url,
    delete_namespace,
    drop_database,
    new_namespace,
    recreate_database,
    redis_url,
)
from bench.harness import MODES, Mode, Result, load_average, machine_info, machine_line, table, write_json
from bench.unfinished import RunNote, clean_up_after_killed_runs, forget, remember

log = logging.getLogger("bench")

# name -> module; each module has `run(context: BenchContext) -> list[Result]`.
BENCHMARKS: dict[str, str] = {
    "relay": "bench.relay_throughput",
    "latency": "bench.relay_latency",
    "consumer": "bench.consumer_throughput",
    "overhead": "bench.outbox_overhead",
    "e2e": "bench.end_to_end",
    "waiters": "bench.waiters",
    # After e2e: it compares the shop's CPU per order, when e2e ran, with a plain Django view's.
    "web": "bench.web_requests",
}


@dataclass
class BenchContext:
    """What every benchmark gets: the mode, the bench database and namespace, a process pool,
    and the results of the benchmarks that ran before it (for comparisons across them)."""

    mode: Mode
    database_url: str
    namespace: str
    processes: Processes
    results: list[Result] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the relay, the consumer runner, the outbox and the whole shop, "
        "each against a baseline measured in the same run.",
    )
    parser.add_argument("--mode", choices=sorted(MODES), default=os.environ.get("BENCH_MODE", "quick"))
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--database", default="bench_shop", help="bench database name, recreated each run (bench_*)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database and topics afterwards")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="cpu",
        choices=["cpu", "wall"],
        help="record py-spy profiles of the shop's processes: cpu (on-CPU samples, the default) or "
        "wall (idle time too: where a process waits for PostgreSQL or Kafka)",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    # In the registry's order, whatever the order given: a benchmark may compare with an earlier one.
    args.selected = [name for name in BENCHMARKS if name in chosen]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _log_progress()
    # SIGTERM unwinds like Ctrl-C, so the processes started and the database and topics
    # created are cleaned up however the run ends.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mode = MODES[args.mode]
    url = database_url(args.database)
    namespace = new_namespace()
    # Settings read these at import; subprocesses inherit them.
    os.environ["DATABASE_URL"] = url
    os.environ["REDIS_URL"] = redis_url()
    os.environ["KAFKA_NAMESPACE"] = namespace
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    started = time.monotonic()
    log.info("mode %s; database %s; Kafka namespace %s", mode.name, args.database, namespace)
    processes = Processes(env=dict(os.environ), profile=args.profile)
    context = BenchContext(mode=mode, database_url=url, namespace=namespace, processes=processes)
    results: list[Result] = []
    note = None
    try:
        clean_up_after_killed_runs()
        # Written down before they exist, so a run killed from here on is cleaned up by the next.
        note = remember(args.database, namespace)
        machine = _prepare(url)
        for name in args.selected:
            results.extend(_run_one(name, context))
            context.results = list(results)
    except Exception as error:
        log.error("set-up failed: %s", error)
        return 2
    finally:
        processes.stop_all()
        if note is not None and args.keep:
            forget(note)  # kept on purpose: no later run removes them
        elif note is not None:
            _teardown(url, namespace, note)

    elapsed = time.monotonic() - started
    machine["load_average_at_end"] = load_average()
    path = write_json(mode, machine, results, {"namespace": namespace, "elapsed_seconds": round(elapsed, 1)})
    _report(mode, machine, results, path, elapsed)
    _report_profiles(processes.profiles)
    return 0


def _report(mode: Mode, machine: dict[str, Any], results: list[Result], path: Path, elapsed: float) -> None:
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    print(f"\nMachine: {machine_line(machine)}")
    print(f"Mode: {mode.name}, {elapsed:.0f}s; results: {shown}\n")
    print(table(results))
    for result in results:
        if result.note and result.metric != "skipped":
            print(f"  note ({result.benchmark} / {result.metric.strip()}): {result.note}")


def _report_profiles(profiles: list[Path]) -> None:
    if not profiles:
        return
    from bench.profiles import summarize

    print("\nProfiles (py-spy collapsed stacks, with a summary beside each):")
    for profile in profiles:
        summary = profile.with_suffix(".summary.txt")
        summary.write_text(summarize(profile, top=25) + "\n")
        print(f"  {profile}\n  {summary}")


def _log_progress() -> None:
    """Progress lines on stderr, whatever LOG_LEVEL Django's logging config sets for the rest."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s bench: %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _prepare(url: str) -> dict[str, Any]:
    """Recreate the bench database, migrate it, provision the namespace's topics."""
    log.info("recreating the bench database and migrating it")
    recreate_database(url)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from backbone.preflight import require
    from backbone.provisioning import ensure_topics

    require()
    call_command("migrate", verbosity=0, interactive=False)
    ensure_topics()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres_version = cursor.fetchone()[0].split()[0]
    connection.close()
    return machine_info(postgres_version, _kafka_version())


def _kafka_version() -> str:
    from django.conf import settings

    from backbone.conf import backbone_settings

    jars = sorted(Path(settings.BASE_DIR, ".services", "kafka").glob("libs-*/kafka_*-*.jar"))
    for jar in jars:
        name = jar.stem  # kafka_2.13-4.4.0
        if name.count("-") == 1 and not name.endswith(("-test", "-sources")):
            return f"{name.split('-')[1]} (local KRaft broker)"
    return f"unknown (broker at {backbone_settings.KAFKA_BOOTSTRAP_SERVERS})"


def _run_one(name: str, context: BenchContext) -> list[Result]:
    module = importlib.import_module(BENCHMARKS[name])
    runner: Callable[[BenchContext], list[Result]] = module.run
    log.info("=== %s ===", name)
    _fresh_outbox(context.database_url)
    started = time.monotonic()
    try:
        results = runner(context)
    except Exception as error:
        log.error("%s failed: %s\n%s", name, error, traceback.format_exc())
        results = [Result(benchmark=name, metric="error", value=None, note=str(error).splitlines()[0])]
    finally:
        context.processes.stop_all()
        from django.db import connections

        connections.close_all()
    log.info("=== %s done in %.0fs ===", name, time.monotonic() - started)
    return results


def _fresh_outbox(url: str) -> None:
    """Each benchmark starts on an empty outbox, whatever ran before it."""
    from bench.environment import connect

    with connect(url, autocommit=True) as connection:
        connection.execute("TRUNCATE outbox")


def _teardown(url: str, namespace: str, note: RunNote) -> None:
    from django.db import connections

    connections.close_all()
    try:
        left = delete_namespace(namespace)
        drop_database(url)
    except Exception as error:
        log.warning("clean-up incomplete (the next run finishes it): %s", error)
        return
    if left:
        log.warning("clean-up incomplete (the next run finishes it): %s stay", ", ".join(left))
        return
    forget(note)
    log.info("removed the bench database and the namespace's topics and consumer groups")
