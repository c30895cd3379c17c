"""The bench's own arithmetic and parsing, which every reported number relies on."""

import math
from pathlib import Path

from bench.end_to_end import _procfile
from bench.harness import Result, latency_summary, percentile, table
from bench.profiles import summarize


def test_percentile_interpolates_between_samples():
    samples = [4.0, 1.0, 3.0, 2.0]
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 50) == 2.5
    assert percentile(samples, 100) == 4.0
    assert math.isclose(percentile(list(range(101)), 99), 99.0)


def test_percentile_of_nothing_is_nan():
    assert math.isnan(percentile([], 50))


def test_latency_summary_is_in_milliseconds():
    summary = latency_summary([0.001] * 98 + [0.100, 0.200])
    assert summary["count"] == 100
    assert summary["p50_ms"] == 1.0
    assert summary["max_ms"] == 200.0
    assert 1.0 < summary["p99_ms"] <= 200.0


def test_table_has_one_row_per_result_and_says_whether_targets_were_met():
    results = [
        Result("relay throughput", "rows/s", 12_345.0, "/s", baseline=50_000.0, ratio=0.2469, met=False),
        Result("relay latency", "p99", 3.21, "ms", target="<= 50 ms", met=True),
        Result("e2e", "skipped", None, note="no Procfile yet"),
    ]
    lines = table(results).splitlines()
    assert lines[0].split() == ["benchmark", "metric", "value", "baseline", "ratio", "target", "met"]
    assert len(lines) == 2 + len(results)
    assert "12,345 /s" in lines[2]
    assert "0.25" in lines[2]
    assert lines[2].endswith("NO")
    assert "3.21 ms" in lines[3]
    assert lines[3].endswith("yes")
    assert "skipped: no Procfile yet" in lines[4]


def test_profile_summary_counts_self_and_inclusive_time_and_leaves_out_waits(tmp_path: Path):
    profile = tmp_path / "relay.pyspy.txt"
    profile.write_text(
        "run (outbox/relay.py:10);mark (outbox/store.py:20) 30\n"
        "run (outbox/relay.py:10);produce (outbox/publisher.py:5) 10\n"
        "run (outbox/relay.py:10);wait (outbox/listener.py:3);OutboxListener.wait (outbox/listener.py:9) 60\n"
    )
    summary = summarize(profile)
    assert "40 active samples" in summary
    assert "75.0    75.0  mark (outbox/store.py)" in summary
    assert "0.0   100.0  run (outbox/relay.py)" in summary
    assert "100 samples" in summarize(profile, active_only=False)


def test_procfile_lines_become_named_commands(tmp_path: Path):
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "# comment: not a process\nweb: gunicorn app --bind ${SHOP_BIND}\n\nrelay: python manage.py relay\n"
    )
    assert _procfile(procfile) == {
        "web": "gunicorn app --bind ${SHOP_BIND}",
        "relay": "python manage.py relay",
    }


def test_cpu_rows_give_each_process_and_a_total_of_the_shops_own_processes():
    from bench.e2e_meters import cpu_results

    cpu = {
        "web": 10.0,
        "relay": 3.0,
        "postgres": 8.0,
        "kafka broker": 50.0,
        "load client": 40.0,
        "machine busy %": 90.0,
        "db commits": 7.0,
        "http requests": 2.5,
    }
    *processes, total, commits = cpu_results("end to end", "@20/s", cpu)
    assert [row.value for row in processes] == [50.0, 40.0, 10.0, 8.0, 3.0]
    assert "kafka broker (not in total)" in processes[0].metric
    assert total.metric == "CPU ms per confirmed order @20/s: total"
    assert total.value == 21.0  # web + relay + postgres: the broker is shared, the client is the bench
    assert total.met is True
    assert total.target == "<= 30 ms"
    assert cpu_results("end to end", "@20/s", {**cpu, "web": 20.0})[-2].met is False
    assert (commits.metric, commits.value, commits.target, commits.met) == (
        "database commits per confirmed order @20/s",
        7.0,
        "<= 12",
        True,
    )
