"""The web process's two lanes (backbone/web_lanes.py) on the real server: requests that do not
wait share a fixed set of threads, a crowd past them is answered 503 with Retry-After (never a
dropped connection), and only a view of the waiting lane that is asked to wait waits."""

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from backbone.testing import python_argv
from orders.tests import test_long_polls
from orders.tests.test_long_polls import Web, customer, pending_orders, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

catalog = test_long_polls.catalog


def test_a_crowd_past_the_threads_is_answered_503_with_retry_after_never_dropped(tmp_path, catalog) -> None:
    web = Web(tmp_path / "web.log", workers=1, WEB_THREADS="2", WEB_QUEUE_SECONDS="0.05")
    crowd = 300

    async def scenario() -> tuple[list[httpx.Response | BaseException], int]:
        limits = httpx.Limits(max_connections=crowd, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            catalog = f"{web.url}/api/products/?page_size=100"
            requests = [client.get(catalog) for _ in range(crowd)]
            answers = await asyncio.gather(*requests, return_exceptions=True)
            return answers, web.worker_threads()

    try:
        answers, threads = run(scenario())
    finally:
        web.stop()
    failures = [answer for answer in answers if isinstance(answer, BaseException)]
    assert not failures, failures[:3]
    responses = [answer for answer in answers if isinstance(answer, httpx.Response)]
    statuses = {response.status_code for response in responses}
    assert statuses <= {200, 503}, statuses
    shed = [response for response in responses if response.status_code == 503]
    assert shed, "a crowd of 300 on 2 threads with a 50 ms queue: some must be shed"
    assert all(response.headers["Retry-After"] == "1" for response in shed)
    assert all("busy" in response.json()["detail"] for response in shed)
    assert threads < 30, f"{threads} threads: the direct lane's are fixed, not one per request"
    assert "Traceback" not in web.log.read_text()


def test_only_a_waiting_view_asked_to_wait_waits(tmp_path, catalog) -> None:
    web = Web(tmp_path / "web.log")
    headers, (order,) = pending_orders("uma", 1)
    try:
        timings = {}
        for name, path in {
            "catalog with ?wait": "/api/products/?wait=3",
            "order list with ?wait": "/api/orders/?wait=3",
            "order's story with ?wait": f"/api/orders/{order.id}/events/?wait=3",
            "order with ?wait": f"/api/orders/{order.id}/?wait=1",
        }.items():
            started = time.monotonic()
            response = httpx.get(f"{web.url}{path}", headers=headers, timeout=30)
            timings[name] = time.monotonic() - started
            assert response.status_code == 200, (name, response.text)
        other = httpx.get(f"{web.url}/api/orders/{order.id}/?wait=1", headers=customer("vic"), timeout=30)
    finally:
        web.stop()
    assert timings["order with ?wait"] >= 1.0  # the one that waits
    assert max(t for name, t in timings.items() if name != "order with ?wait") < 1.0, timings
    assert other.status_code == 404


def test_a_body_ten_times_too_big_is_a_413_in_either_lane(tmp_path, catalog) -> None:
    web = Web(tmp_path / "web.log")
    headers = {**customer("wes"), "Content-Type": "application/json"}
    body = b'{"lines": [], "payment_token": "' + b"x" * (10 * 65536) + b'"}'
    try:
        direct = httpx.post(f"{web.url}/api/orders/", content=body, headers=headers, timeout=30)
        waiting = httpx.post(
            f"{web.url}/api/orders/", content=body, headers={**headers, "Prefer": "wait=5"}, timeout=30
        )
        after = httpx.get(f"{web.url}/api/products/", timeout=30)
    finally:
        web.stop()
    assert direct.status_code == 413, direct.text
    assert waiting.status_code == 413, waiting.text
    assert "detail" in direct.json()
    assert after.status_code == 200  # the worker serves on
    assert "Traceback" not in web.log.read_text()


@pytest.mark.parametrize("collected", [False, True], ids=["fresh checkout", "after collectstatic"])
def test_static_files_are_served_from_the_loop_never_queued_for_a_direct_thread(tmp_path, collected) -> None:
    static_root = tmp_path / "static"
    if collected:
        collect = subprocess.run(
            python_argv("manage.py", "collectstatic", "--noinput", "--verbosity", "0"),
            cwd=settings.BASE_DIR,
            env={**os.environ, "STATIC_ROOT": str(static_root)},
            capture_output=True,
            timeout=120,
        )
        assert collect.returncode == 0, collect.stderr
    # One direct thread and a 50 ms queue: a crowd sent to the direct lane would be shed.
    lane = {"WEB_THREADS": "1", "WEB_QUEUE_SECONDS": "0.05"}
    web = Web(tmp_path / "web.log", workers=1, STATIC_ROOT=str(static_root), **lane)
    expected = Path(finders.find("admin/css/base.css")).read_bytes()

    async def scenario() -> list[httpx.Response]:
        url = f"{web.url}/static/admin/css/base.css"
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.get(url) for _ in range(40)))

    try:
        responses = run(scenario())
        missing = httpx.get(f"{web.url}/static/admin/css/no-such-file.css", timeout=30)
    finally:
        web.stop()
    assert [response.status_code for response in responses] == [200] * 40
    assert all(response.content == expected for response in responses)
    assert responses[0].headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


def test_an_idle_keep_alive_connection_still_takes_a_request_seconds_later(tmp_path, catalog) -> None:
    """A client that keeps its connection (httpx, a load balancer) may send the next request on
    it after a pause: the server must not have closed it meanwhile (gunicorn's 2 s default did,
    and the request then met a reset connection)."""
    web = Web(tmp_path / "web.log")
    request = b"GET /health/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", web.port), timeout=30) as connection:
            connection.sendall(request)
            assert one_response(connection).startswith(b"HTTP/1.1 200")
            time.sleep(4)  # idle, as between two requests of a pooled connection
            connection.sendall(request)
            answer = one_response(connection)
    finally:
        web.stop()
    assert answer.startswith(b"HTTP/1.1 200"), answer


def one_response(connection: socket.socket) -> bytes:
    """One whole HTTP/1.1 response, its body by Content-Length: the server may send the headers
    and the body in separate segments, and the rest of one answer must not pass for the next."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            return received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
