"""The base of the project's middleware: sync and async capable, so that under ASGI (the web
process) Django runs the whole chain on the event loop and a waiting request holds no thread.

One sync-only middleware in the chain is enough to run everything inside it in a thread of its
own, blocked for as long as the view takes: a long-poll of 30 s would hold a thread for 30 s.
A subclass implements `handle` for sync handlers (WSGI, the test client) and `ahandle` for the
event loop; Django picks by `get_response`, a coroutine function when the handler is async.
"""

from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse


class SyncAndAsyncMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)  # Django then awaits what __call__ returns

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        return self.ahandle(request) if self.is_async else self.handle(request)

    def handle(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    async def ahandle(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    def respond(self, request: HttpRequest) -> HttpResponse:
        """The response of the rest of the chain, when it is sync."""
        return cast(HttpResponse, self.get_response(request))

    async def arespond(self, request: HttpRequest) -> HttpResponse:
        """The response of the rest of the chain, when it is async."""
        return await cast(Awaitable[HttpResponse], self.get_response(request))
