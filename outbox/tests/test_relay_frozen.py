"""A frozen relay leader (SIGSTOP: a hung process, a frozen VM, a long pause) with real
`manage.py relay` processes: it keeps its session and its lock, so `status --check` must name
it, and a standby must end its session, take over, and leave it a standby when it wakes."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
from django.conf import settings

from backbone.testing import read_topic, wait_for

from .conftest import RelayProcess, RelayStarter, emit_steps, process_env, wait_for_published

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("kafka_topics"),
    pytest.mark.e2e,
]

# A working leader runs a statement on its lock session at least every 0.5 s poll.
FAST = {
    "RELAY_POLL_INTERVAL_SECONDS": "0.5",
    "RELAY_MAX_BACKOFF_SECONDS": "1",
    "HEARTBEAT_INTERVAL_SECONDS": "0.5",
}
STATUS_LIMIT = 2.0  # STATUS_MAX_LEADER_IDLE_SECONDS
TAKEOVER_AFTER = 8.0  # RELAY_TAKEOVER_AFTER_SECONDS: more than 0.5 + 1 + two 2 s Kafka probes


@contextmanager
def frozen(relay: RelayProcess) -> Iterator[None]:
    """SIGSTOP the relay; SIGCONT it on the way out whatever happened (or thaw() it earlier)."""
    os.kill(relay.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        thaw(relay)


def thaw(relay: RelayProcess) -> None:
    with suppress(ProcessLookupError):
        os.kill(relay.process.pid, signal.SIGCONT)


def status_check() -> subprocess.CompletedProcess[str]:
    env = process_env(STATUS_MAX_LEADER_IDLE_SECONDS=str(STATUS_LIMIT), STATUS_HEARTBEAT_STALE_SECONDS="3")
    return subprocess.run(
        [sys.executable, "manage.py", "status", "--check", "--only", "relay"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_leader_and_standby(
    start_relay: RelayStarter, *, takeover: float
) -> tuple[RelayProcess, RelayProcess]:
    env = process_env(**FAST, RELAY_TAKEOVER_AFTER_SECONDS=str(takeover))
    leader = start_relay(name="leader", env=env)
    leader.wait_for_log("is now the leader")
    standby = start_relay(name="standby", env=env)
    standby.wait_for_log("standing by")
    return leader, standby


def steps_by_key(keys: set[str], at_least: int) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {key: [] for key in keys}
    for record in read_topic("orders", keys=keys, at_least=at_least, timeout=60):
        found[record.key].append(json.loads(record.value)["step"])
    return found


def test_status_check_names_a_frozen_leader_and_the_oldest_waiting_row(probe, start_relay: RelayStarter):
    leader, _standby = start_leader_and_standby(start_relay, takeover=0)  # 0: no takeover here
    with frozen(leader):
        frozen_at = time.monotonic()
        emit_steps(probe, str(uuid.uuid4()), range(3))

        answer = wait_for(
            lambda: (found := status_check()).returncode == 1 and "stalled" in found.stdout and found,
            timeout=30,
            what="status --check to name the frozen leader",
        )
        noticed_after = time.monotonic() - frozen_at

    line = next(line for line in answer.stdout.splitlines() if "stalled" in line)
    assert (
        f"relay: leader of shard 0 of 1 stalled: host {os.uname().nodename} pid {leader.process.pid}," in line
    )
    assert "while 3 rows wait, the oldest" in line
    idle, limit, oldest = re.search(r"idle (\d+) s \(limit (\S+) s\).* the oldest (\d+) s old", line).groups()
    assert float(limit) == STATUS_LIMIT
    assert STATUS_LIMIT <= int(idle) <= noticed_after + 1
    assert int(oldest) <= noticed_after + 1
    assert noticed_after < STATUS_LIMIT + 20  # the limit, plus a status run or a few on a busy machine


def test_a_standby_takes_over_from_a_frozen_leader_which_stands_by_when_it_wakes(
    probe, start_relay: RelayStarter
):
    leader, standby = start_leader_and_standby(start_relay, takeover=TAKEOVER_AFTER)
    before, during, after = (str(uuid.uuid4()) for _ in range(3))
    emit_steps(probe, before, range(3))
    wait_for_published({before})

    with frozen(leader):
        frozen_at = time.monotonic()
        emit_steps(probe, during, range(3))
        wait_for_published({during}, timeout=TAKEOVER_AFTER + 30)
        took = time.monotonic() - frozen_at
        assert "ended its session to take over" in standby.log()
        assert took < TAKEOVER_AFTER + 20, took
        woken_from = len(leader.log())
        thaw(leader)
        # Its next statement on the ended session fails: no publishing, back to standing by.
        leader.wait_for_log("no longer the leader, standing by", after=woken_from)
        leader.wait_for_log("another relay leads; standing by", after=woken_from)

    emit_steps(probe, after, range(3))
    wait_for_published({after})
    # Each event once, in order: the woken leader sent nothing, before or after the new one's.
    assert steps_by_key({before, during, after}, 9) == {key: [0, 1, 2] for key in (before, during, after)}
    assert leader.running
    assert standby.running
    assert "is now the leader" not in leader.log()[woken_from:]
    assert "Traceback" not in leader.log() + standby.log()


def test_a_leader_frozen_mid_window_sends_nothing_more_once_it_wakes(probe, start_relay: RelayStarter):
    """Frozen after Kafka confirmed the first batch of a window, before marking it: the standby
    republishes everything; the woken leader must not send the rest of its window behind it."""
    env = process_env(**FAST, RELAY_TAKEOVER_AFTER_SECONDS=str(TAKEOVER_AFTER))
    leader = start_relay(
        "--batch-size", "2", name="leader", env={**env, "BACKBONE_FAILPOINTS": "relay.after-delivery:freeze"}
    )
    leader.wait_for_log("is now the leader")
    standby = start_relay("--batch-size", "2", name="standby", env=env)
    standby.wait_for_log("standing by")
    key = str(uuid.uuid4())
    try:
        emit_steps(probe, key, range(6))  # one window of three batches
        leader.wait_for_log("failpoint relay.after-delivery reached: frozen until SIGCONT")
        emit_steps(probe, key, [6, 7])
        wait_for_published({key}, timeout=TAKEOVER_AFTER + 30)
        woken_from = len(leader.log())
        thaw(leader)
        leader.wait_for_log("no longer the leader, standing by", after=woken_from)
    finally:
        thaw(leader)

    # Steps 0 and 1 reached Kafka before the freeze; the new leader then sent all eight, and
    # nothing older follows them: the woken leader sent neither step 2 nor anything after.
    assert steps_by_key({key}, 10) == {key: [0, 1, 0, 1, 2, 3, 4, 5, 6, 7]}
    assert leader.running
    assert standby.running


def test_with_shards_the_other_relay_takes_a_frozen_relays_shard_over(probe, start_relay: RelayStarter):
    """The frozen relay also still counts as a relay of the layout (so the other's share stays
    one shard): the standby ends that registration too, then leads both shards."""
    env = process_env(**FAST, RELAY_TAKEOVER_AFTER_SECONDS=str(TAKEOVER_AFTER))
    first = start_relay("--shards", "2", name="first", env=env)
    first.wait_for_log("is now the leader (shard 1 of 2)")
    second = start_relay("--shards", "2", name="second", env=env)
    second.wait_for_log("is now the leader (shard", timeout=30)
    frozen_shard = "0" if "is now the leader (shard 1 of 2)" in second.log() else "1"
    keys = {str(uuid.uuid4()) for _ in range(20)}  # both shards' keys

    with frozen(first):
        for key in keys:
            emit_steps(probe, key, range(3))
        wait_for_published(keys, timeout=TAKEOVER_AFTER + 30)
        assert f"the leader (shard {frozen_shard} of 2) outbox-relay pid={first.process.pid}" in second.log()
        assert "ended the shard layout registration of a relay stalled" in second.log()
        woken_from = len(first.log())

    first.wait_for_log("no longer the leader, standing by", after=woken_from)
    assert steps_by_key(keys, 60) == {key: [0, 1, 2] for key in keys}
    assert first.running
    assert second.running


def test_a_takeover_limit_a_working_leader_could_reach_is_refused_in_one_line():
    env = process_env(RELAY_TAKEOVER_AFTER_SECONDS="20", RELAY_MAX_BACKOFF_SECONDS="30")
    result = subprocess.run(
        [sys.executable, "manage.py", "relay"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: RELAY_TAKEOVER_AFTER_SECONDS=20 must be more than 39 (poll interval up to 5 s "
        "+ RELAY_MAX_BACKOFF_SECONDS + two Kafka probes), or 0 for none"
    ]
