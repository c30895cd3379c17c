"""backbone/wsgi_on_threads.py with a WSGI application of the test's own (no server): the answer
goes out in one piece or, when large, in parts; the response is always closed (Django's
`request_finished`); the scope reaches the environ; the body is read before the application runs."""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext

from backbone import wsgi_on_threads
from backbone.tracing import SCOPE_ENVIRON_KEY

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/api/orders/",
    "query_string": b"a=1",
    "http_version": "1.1",
    "headers": [(b"content-type", b"application/json"), (b"x-one", b"1"), (b"x-one", b"2")],
    "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
}


class Answer:
    """A WSGI response iterable that records whether it was closed."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.closed = False

    def __iter__(self):
        return iter(self.parts)

    def close(self) -> None:
        self.closed = True


def serve(parts: list[bytes], body_parts: list[bytes]) -> tuple[list[dict[str, Any]], Answer, dict[str, Any]]:
    answer = Answer(parts)
    seen: dict[str, Any] = {}

    def application(environ: dict[str, Any], start_response: Any) -> Answer:
        seen.update(environ, body=environ["wsgi.input"].read())
        start_response("201 Created", [("Content-Type", "text/plain")])
        return answer

    async def scenario() -> list[dict[str, Any]]:
        incoming = [
            {"type": "http.request", "body": part, "more_body": n < len(body_parts) - 1}
            for n, part in enumerate(body_parts)
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        with ThreadPoolExecutor(max_workers=1) as thread:
            async with ThreadSensitiveContext(executor=thread):
                await wsgi_on_threads.serve(application, SCOPE, receive, send)
        return sent

    return asyncio.run(scenario()), answer, seen


def test_a_small_answer_goes_out_in_one_piece_and_the_response_is_closed() -> None:
    sent, answer, environ = serve([b"hello, ", b"world"], [b'{"a":', b" 1}"])

    assert sent == [
        {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]},
        {"type": "http.response.body", "body": b"hello, world"},
    ]
    assert answer.closed
    assert environ["body"] == b'{"a": 1}'
    assert environ[SCOPE_ENVIRON_KEY] is SCOPE
    assert (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"]) == (
        "POST",
        "/api/orders/",
        "a=1",
    )
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["HTTP_X_ONE"] == "1,2"
    assert (environ["REMOTE_ADDR"], environ["SERVER_PORT"]) == ("127.0.0.1", "8000")


def test_a_large_answer_is_streamed_in_parts_in_order() -> None:
    parts = [bytes([65 + n]) * 100_000 for n in range(5)]  # 500 kB, past STREAM_ABOVE_BYTES
    sent, answer, _ = serve(parts, [b""])

    assert sent[0]["type"] == "http.response.start"
    bodies = [message["body"] for message in sent[1:]]
    assert b"".join(bodies) == b"".join(parts)
    assert len(bodies) > 2
    assert sent[-1] == {"type": "http.response.body", "body": b""}
    assert all(message["more_body"] for message in sent[1:-1])
    assert answer.closed


def test_the_response_is_closed_when_the_application_fails_midway() -> None:
    class Failing(Answer):
        def __iter__(self):
            yield b"part"
            raise RuntimeError("the view's generator broke")

    answer = Failing([])

    def application(environ: dict[str, Any], start_response: Any) -> Answer:
        start_response("200 OK", [])
        return answer

    async def scenario() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            pass

        with ThreadPoolExecutor(max_workers=1) as thread:
            async with ThreadSensitiveContext(executor=thread):
                await wsgi_on_threads.serve(application, SCOPE, receive, send)

    with pytest.raises(RuntimeError, match="broke"):  # to the server, which answers 500
        asyncio.run(scenario())
    assert answer.closed
