"""Static files (the admin's, Swagger UI's for /api/docs/) served by ServeStatic, on the event loop.

ServeStatic's Django middleware is async only (`sync_capable = False`): in a sync chain Django
would wrap it, and every request of the direct lane would cross to the event loop and back for
it. So this middleware takes part in async chains only and drops out of sync ones (Django's
`MiddlewareNotUsed`): the web process sends every path under STATIC_URL to its async lane
(backbone/web_lanes.py), where ServeStatic reads the file in a thread of its own and sends it
from the loop, so a slow download holds none of the direct lane's threads. A sync server
(runserver, the test client) serves static files through django.contrib.staticfiles in DEBUG.

Only ServeStatic's public API: its middleware, built and called as Django builds and calls
middleware, and its SERVESTATIC_* settings (docs: https://archmonger.github.io/ServeStatic/).
"""

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase
from servestatic.middleware import ServeStaticMiddleware  # type: ignore[import-untyped]  # no py.typed

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class StaticFilesMiddleware:
    sync_capable = True  # so that Django offers it a sync chain, which it then declines
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        if not iscoroutinefunction(get_response):
            raise MiddlewareNotUsed("static files are served in the async lane")
        self._servestatic = ServeStaticMiddleware(get_response)
        markcoroutinefunction(self)  # Django then awaits what __call__ returns

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await self._servestatic(request)
        return response
