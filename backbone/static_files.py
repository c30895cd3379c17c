"""WhiteNoise's static files, served from an async-capable middleware.

WhiteNoise 6.12 has sync middleware only (its ASGI support was never merged; ServeStatic is
the fork that has it), and one sync middleware runs the rest of the chain in a thread blocked
for the whole request. This subclass looks the path up in WhiteNoise's table on the event loop
and only when it is a static file serves it through a thread (opening and stating a file block);
every other request goes straight on to the async chain.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware  # type: ignore[import-untyped]


class StaticFilesMiddleware(WhiteNoiseMiddleware):  # type: ignore[misc]  # whitenoise is untyped
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)  # Django then awaits what __call__ returns

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        response: HttpResponse = super().__call__(request)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if self.autorefresh:  # DEBUG: looks on disk for every request
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            response: HttpResponse = await self.get_response(request)
            return response
        served: HttpResponse = await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return served
