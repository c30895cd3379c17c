"""A WSGI application served from an ASGI server on threads the caller keeps: one hop per request.

The request's body is read on the event loop; the WSGI application then runs, from its first
middleware to its last byte, in one thread-sensitive call (asgiref's `sync_to_async`: on the
thread of the caller's `ThreadSensitiveContext`, and an async view inside runs on this loop),
and the answer goes back to the loop in one piece. (asgiref's `WsgiToAsgi` crosses back to the
loop for every part of the answer and never calls the response's `close()`, which is where
Django sends `request_finished` and gives its database connections back.) An answer larger than
`STREAM_ABOVE_BYTES` (a static file) is sent on in parts from the thread as it is made.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from asgiref.sync import sync_to_async

from .tracing import SCOPE_ENVIRON_KEY

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Coroutine[Any, Any, None]]
WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

STREAM_ABOVE_BYTES = 256 * 1024
_BODY_IN_MEMORY_BYTES = 64 * 1024  # a larger request body is spooled to a file, as Django does


class RequestAborted(Exception):
    """The client went away before its request's body arrived."""


async def serve(application: WSGIApplication, scope: Scope, receive: Receive, send: Send) -> None:
    with SpooledTemporaryFile(max_size=_BODY_IN_MEMORY_BYTES) as body:
        try:
            await _read_body(receive, body)
        except RequestAborted:
            return
        answer = _Answer(asyncio.get_running_loop(), send)
        await sync_to_async(answer.run, thread_sensitive=True)(application, environ(scope, body))
        if not answer.streaming:
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
            await send({"type": "http.response.body", "body": b"".join(answer.parts)})


async def _read_body(receive: Receive, body: IO[bytes]) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted
        body.write(message.get("body", b""))
        if not message.get("more_body"):
            body.seek(0)
            return


def environ(scope: Scope, body: IO[bytes]) -> dict[str, Any]:
    """PEP 3333's environ for an ASGI HTTP scope (as asgiref's and a2wsgi's bridges build it)."""
    script_name = scope.get("root_path", "").encode("utf8").decode("latin1")
    path_info = scope["path"].encode("utf8").decode("latin1")
    if path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server_name, server_port = scope.get("server") or ("localhost", 80)
    result: dict[str, Any] = {
        SCOPE_ENVIRON_KEY: scope,
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope["query_string"].decode("ascii"),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port or 0),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if client := scope.get("client"):
        result["REMOTE_ADDR"], result["REMOTE_PORT"] = client[0], str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin1").upper().replace("-", "_")
        key = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{name}"
        value = raw_value.decode("latin1")
        result[key] = f"{result[key]},{value}" if key in result else value
    return result


@dataclass
class _Answer:
    """The application's answer, gathered on its thread."""

    loop: asyncio.AbstractEventLoop
    send: Send
    status: int = 500
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    streaming: bool = False

    def run(self, application: WSGIApplication, environ: dict[str, Any]) -> None:
        response = application(environ, self.start_response)
        try:
            for part in response:
                self._add(part)
            if self.streaming:
                self._send_now({"type": "http.response.body", "body": b""})
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()  # Django: request_finished, connections back to their pool

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status = int(status.split(" ", 1)[0])
        self.headers = [(name.lower().encode("latin1"), value.encode("latin1")) for name, value in headers]

    def _add(self, part: bytes) -> None:
        if self.streaming:
            self._send_now({"type": "http.response.body", "body": part, "more_body": True})
            return
        self.parts.append(part)
        self.size += len(part)
        if self.size > STREAM_ABOVE_BYTES:
            self.streaming = True
            self._send_now({"type": "http.response.start", "status": self.status, "headers": self.headers})
            self._send_now({"type": "http.response.body", "body": b"".join(self.parts), "more_body": True})
            self.parts.clear()

    def _send_now(self, message: Message) -> None:
        asyncio.run_coroutine_threadsafe(self.send(message), self.loop).result()
