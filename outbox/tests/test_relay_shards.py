"""Relay shards with real `manage.py relay --shards 2` processes: the backlog split by key,
each row published once and in order per key, and a killed relay's shard taken over."""

import json
import re
import signal
import uuid
from contextlib import nullcontext

import pytest
from django.db import transaction

from backbone.contracts import Event
from backbone.testing import free_port, read_topic, wait_for
from backbone.testing.metrics import by_label, scrape, total
from outbox.emit import emit
from outbox.models import OutboxRecord

from .conftest import RelayProcess, RelayStarter, admin_connection, process_env, wait_for_published

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("kafka_topics"),
    pytest.mark.e2e,
]

LEADS = re.compile(r"is now the leader \(shard (\d) of 2\)")


def emit_backlog(probe: type[Event], keys: list[str], steps: int, *, at_once: bool = False) -> None:
    """Step after step for every key, one transaction per step (or all in one, `at_once`):
    per key, commit order (then id order) is step order, and the keys of both shards interleave."""
    with transaction.atomic(durable=True) if at_once else nullcontext():
        for step in range(steps):
            with transaction.atomic():
                for key in keys:
                    emit(probe(order_id=key, step=step))


def start_pair(start_relay: RelayStarter, *args: str) -> tuple[RelayProcess, RelayProcess]:
    """Two relays of two shards, each leading one: the first wins both, hands one over.
    Each serves its metrics on a port of its own (`metrics_port(relay)`)."""
    env = process_env(RELAY_STATUS_INTERVAL_SECONDS="3600")
    first = start_relay("--shards", "2", *args, *_metrics_args("first"), name="first", env=env)
    first.wait_for_log("is now the leader (shard 1 of 2)")
    second = start_relay("--shards", "2", *args, *_metrics_args("second"), name="second", env=env)
    second.wait_for_log("is now the leader (shard", timeout=30)
    return first, second


_metrics_ports: dict[str, int] = {}


def _metrics_args(name: str) -> list[str]:
    _metrics_ports[name] = free_port()
    return ["--metrics-port", str(_metrics_ports[name])]


def published_by(relay: RelayProcess) -> int:
    """Rows the relay process published (confirmed by Kafka), from its metrics."""
    samples = scrape(f"http://127.0.0.1:{_metrics_ports[relay.name]}/metrics")
    return int(total(samples, "outbox_records_published_total"))


def steps_by_key(keys: list[str], at_least: int) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {key: [] for key in keys}
    for record in read_topic("orders", keys=set(keys), at_least=at_least, timeout=60):
        found[record.key].append(json.loads(record.value)["step"])
    return found


def test_two_relays_of_two_shards_split_a_backlog_each_row_once_in_order(probe, start_relay: RelayStarter):
    first, second = start_pair(start_relay)
    keys, steps = [str(uuid.uuid4()) for _ in range(100)], 10

    emit_backlog(probe, keys, steps)
    wait_for_published(set(keys), timeout=60)
    # The counters move after the rows are marked: wait for them to add up to the backlog.
    wait_for(lambda: published_by(first) + published_by(second) >= len(keys) * steps, what="the counters")

    by_first, by_second = published_by(first), published_by(second)
    assert first.stop() == 0
    assert second.stop() == 0
    assert steps_by_key(keys, len(keys) * steps) == {key: list(range(steps)) for key in keys}
    assert by_first > 0, by_first  # both relays published
    assert by_second > 0, by_second
    assert by_first + by_second == len(keys) * steps  # exactly once: no row in both shards
    for relay in (first, second):
        assert len(set(LEADS.findall(relay.log()))) >= 1
        assert "Traceback" not in relay.log()


def test_a_killed_relays_shard_is_taken_over_and_the_backlog_finished(probe, start_relay: RelayStarter):
    # The whole backlog commits at once, in small batches: it drains slowly enough to kill a
    # relay in the middle of it.
    first, second = start_pair(start_relay, "--batch-size", "5")
    killed_shard = int(LEADS.findall(second.log())[-1])
    keys, steps = [str(uuid.uuid4()) for _ in range(100)], 30
    total = len(keys) * steps

    emit_backlog(probe, keys, steps, at_once=True)
    wait_for(
        lambda: OutboxRecord.objects.filter(key__in=keys, published_at__isnull=False).count() > total // 20,
        timeout=60,
        interval=0.01,
        what="a twentieth of the backlog published",
    )
    before_kill = len(first.log())
    second.stop(signal.SIGKILL)
    with admin_connection() as admin:
        row = admin.execute("SELECT count(*) FROM outbox_pending WHERE key_hash %% 2 = %s", (killed_shard,))
        left_in_killed_shard = row.fetchone()[0]
    assert left_in_killed_shard > 0  # killed mid-way: its shard still had rows to publish

    # (The first relay led both shards before it handed one over: look after the kill only.)
    first.wait_for_log(f"is now the leader (shard {killed_shard} of 2)", after=before_kill, timeout=30)
    wait_for_published(set(keys), timeout=120)

    found = steps_by_key(keys, total)
    for key in keys:
        # A row on Kafka but not yet marked when the relay died is published again: keep
        # each step's first copy, which must come in commit order.
        assert list(dict.fromkeys(found[key])) == list(range(steps)), key
    assert first.running


def test_a_relay_with_another_number_of_shards_stands_by(probe, start_relay: RelayStarter):
    # Shard 0 of 2 and shard 0 of 3 hold different keys: both publishing would break order.
    running = start_relay("--shards", "2", name="two")
    running.wait_for_log("is now the leader (shard 1 of 2)")
    other = start_relay("--shards", "3", name="three")
    other.wait_for_log("another relay runs with 2 shards, this one 3: standing by")

    key = str(uuid.uuid4())
    emit_backlog(probe, [key], 3)
    wait_for_published({key})
    assert "is now the leader" not in other.log()
    assert other.running


def leader_gauges(port: int) -> dict[str, float]:
    return by_label(scrape(f"http://127.0.0.1:{port}/metrics"), "outbox_relay_leader", "shard")


def test_each_relay_reports_which_shard_it_leads(start_relay: RelayStarter):
    """`outbox_relay_leader{shard}`: 1 where this process leads, 0 where it stands by; over the
    two processes, each shard is led exactly once."""
    env = process_env(RELAY_STATUS_INTERVAL_SECONDS="3600")
    ports = {"first": free_port(), "second": free_port()}
    first = start_relay("--shards", "2", "--metrics-port", str(ports["first"]), name="first", env=env)
    first.wait_for_log("is now the leader (shard 1 of 2)")
    assert wait_for(lambda: leader_gauges(ports["first"]) == {"0": 1.0, "1": 1.0}, timeout=10)
    second = start_relay("--shards", "2", "--metrics-port", str(ports["second"]), name="second", env=env)
    second.wait_for_log("is now the leader (shard", timeout=30)
    handed_over = LEADS.findall(second.log())[-1]
    kept = "1" if handed_over == "0" else "0"

    def settled() -> bool:
        return leader_gauges(ports["first"]) == {handed_over: 0.0, kept: 1.0} and leader_gauges(
            ports["second"]
        ) == {handed_over: 1.0, kept: 0.0}

    assert wait_for(settled, timeout=30, what="each relay to report the shard it leads")
