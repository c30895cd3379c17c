"""The middleware chain under ASGI: async end to end, so that a waiting request holds no thread,
with each request's correlation id and trace context its own among many at once."""

import asyncio
import logging
import time

import pytest
from django.conf import settings
from django.test import AsyncClient

from backbone.correlation import HEADER

pytestmark = pytest.mark.urls("backbone.tests.async_urls")

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_concurrent_async_requests_wait_together_each_in_its_own_story(caplog) -> None:
    async def scenario() -> tuple[list, float]:
        client = AsyncClient()
        started = time.monotonic()
        responses = await asyncio.gather(*(client.get("/slow/?seconds=0.5") for _ in range(20)))
        return responses, time.monotonic() - started

    with caplog.at_level(logging.INFO, logger="backbone.tests.async_urls"):
        responses, seconds = asyncio.run(scenario())

    # A sync-only middleware runs the rest of the chain in one thread per request, and without
    # an ASGI server's per-request threads the twenty take turns: 10 s instead of 0.5.
    assert seconds < 3.0, f"20 concurrent waits of 0.5 s took {seconds:.1f} s"
    ids = [response[HEADER] for response in responses]
    assert len(set(ids)) == 20
    # What each view saw after the others' requests started is its own request's id.
    assert [response.json()["correlation_id"] for response in responses] == ids
    assert sorted(record.correlation_id for record in caplog.records) == sorted(ids)


def test_an_async_request_continues_the_clients_trace() -> None:
    async def scenario():
        return await AsyncClient().get("/slow/?seconds=0", headers={"traceparent": TRACEPARENT})

    response = asyncio.run(scenario())
    assert response.json()["traceparent"].startswith(TRACEPARENT[:36])
    assert response.json()["correlation_id"] == response[HEADER]


def test_a_sync_view_under_the_async_chain_sees_its_requests_story() -> None:
    async def scenario():
        client = AsyncClient()
        return await asyncio.gather(*(client.get("/sync/") for _ in range(5)))

    for response in asyncio.run(scenario()):
        assert response.json()["correlation_id"] == response[HEADER]
        assert response.json()["traceparent"]


def test_the_request_guard_refuses_under_async_too() -> None:
    async def scenario():
        client = AsyncClient()
        return await client.get("/slow/?seconds=0&q=%00"), await client.post(
            "/slow/", data=b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1), content_type="text/plain"
        )

    nul, too_large = asyncio.run(scenario())
    assert nul.status_code == 400
    assert "NUL" in nul.json()["detail"]
    assert too_large.status_code == 413


def test_static_files_are_served_under_async() -> None:
    async def scenario():
        response = await AsyncClient().get("/static/admin/css/base.css")
        # Streamed from the event loop (ServeStatic reads the file in a thread of its own).
        body = b"".join([part async for part in response.streaming_content])
        return response, body

    response, body = asyncio.run(scenario())
    assert response.status_code == 200
    assert b"body" in body
