"""Django's own middleware, whose hooks run on the event loop in an async chain.

Under ASGI, Django's `MiddlewareMixin` sends every `process_request` and `process_response` to a
thread and back (`sync_to_async`): two hops per middleware, a dozen for the usual stack, and most
of what a request of the web's waiting lane cost beyond the same request in the direct lane. These
hooks read headers and cookies and set attributes and lazy objects; none of them does I/O, so on
the loop they cost what they cost in a sync chain. Where one may do I/O, it still goes to a
thread: the session's save when the session changed (or SESSION_SAVE_EVERY_REQUEST), the
messages' store when messages were read or added. A sync chain (WSGI, the test client) runs them
exactly as Django does.

    MIDDLEWARE = [..., "backbone.inline_middleware.SessionMiddleware", ...]  # for Django's of that name

Not here: SecurityMiddleware, CsrfViewMiddleware and XFrameOptionsMiddleware, whose names
`manage.py check --deploy` looks for in MIDDLEWARE (security.W001-W003): a subclass would hide
them from it.

Nothing of Django's is copied: each class is Django's, only the async path of `__call__` differs.
It reads the mode MiddlewareMixin decides (`async_mode`); a Django without it stops start-up
(the middleware chain is built when the handler is), not a request.
"""

from collections.abc import Awaitable
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.middleware import common


class InlineHooks:
    """Mixed in before a `MiddlewareMixin` class: in an async chain, its hooks run on the loop,
    except when `request_needs_thread` / `response_needs_thread` say they may do I/O."""

    async_mode: bool

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]  # MiddlewareMixin's
        if not hasattr(self, "async_mode"):
            raise ImproperlyConfigured(
                f"{type(self).__name__}: django.utils.deprecation.MiddlewareMixin no longer sets "
                "`async_mode`; backbone/inline_middleware.py must follow this Django version"
            )

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self._on_the_loop(request)
        return super().__call__(request)  # type: ignore[misc]  # MiddlewareMixin's

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return False

    def response_needs_thread(self, request: HttpRequest) -> bool:
        return False

    async def _on_the_loop(self, request: HttpRequest) -> HttpResponseBase:
        mixin = cast(Any, self)
        response = None
        if hasattr(mixin, "process_request"):
            response = await self._run(mixin.process_request, self.request_needs_thread(request), request)
        if response is None:
            response = await cast(Awaitable[HttpResponseBase], mixin.get_response(request))
        if hasattr(mixin, "process_response"):
            thread = self.response_needs_thread(request)
            response = await self._run(mixin.process_response, thread, request, response)
        return cast(HttpResponseBase, response)

    @staticmethod
    async def _run(hook: Any, in_thread: bool, *args: Any) -> Any:
        if in_thread:
            return await sync_to_async(hook, thread_sensitive=True)(*args)
        return hook(*args)


class SessionMiddleware(InlineHooks, sessions.SessionMiddleware):
    def response_needs_thread(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is None or session.modified or settings.SESSION_SAVE_EVERY_REQUEST


class CommonMiddleware(InlineHooks, common.CommonMiddleware):
    pass


class AuthenticationMiddleware(InlineHooks, auth.AuthenticationMiddleware):
    pass  # request.user is lazy: it reads the database when the view first asks, in its thread


class MessageMiddleware(InlineHooks, messages.MessageMiddleware):
    def response_needs_thread(self, request: HttpRequest) -> bool:
        # The store writes the messages to a cookie or the session, only when they were read or
        # added. Read by name, with "yes" when a Django renames them: then a thread, as Django's.
        storage = getattr(request, "_messages", None)
        return storage is None or getattr(storage, "used", True) or getattr(storage, "added_new", True)
