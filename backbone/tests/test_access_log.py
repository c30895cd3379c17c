"""The web process's access line for requests that never answered: status 500 or 499."""

import asyncio
import logging

import pytest

from backbone.access_log import AccessLog

SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/api/orders/",
    "raw_path": b"/api/orders/",
    "query_string": b"",
}


async def _receive() -> dict:
    return {"type": "http.request", "body": b""}


async def _send(message: dict) -> None:
    pass


def test_an_application_that_raised_is_logged_as_500(caplog) -> None:
    async def broken(scope, receive, send) -> None:
        raise RuntimeError("broken view")

    with caplog.at_level(logging.INFO, logger="backbone.access"), pytest.raises(RuntimeError):
        asyncio.run(AccessLog(broken)(SCOPE, _receive, _send))
    assert '"GET /api/orders/" 500 0 B' in caplog.text


def test_a_request_the_client_gave_up_on_is_logged_as_499(caplog) -> None:
    async def slow(scope, receive, send) -> None:
        await asyncio.sleep(10)

    async def give_up() -> None:
        await asyncio.wait_for(AccessLog(slow)(SCOPE, _receive, _send), 0.05)

    with caplog.at_level(logging.INFO, logger="backbone.access"), pytest.raises(TimeoutError):
        asyncio.run(give_up())
    assert '"GET /api/orders/" 499 0 B' in caplog.text
