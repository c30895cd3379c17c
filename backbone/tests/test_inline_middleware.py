"""Django's middleware with their hooks on the event loop (backbone/inline_middleware.py): no
thread in an async chain unless a hook may do I/O, and what Django's do, in both chains."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.middleware import security
from django.test import AsyncClient, RequestFactory

from backbone import inline_middleware

CLASSES = [
    inline_middleware.SessionMiddleware,
    inline_middleware.CommonMiddleware,
    inline_middleware.AuthenticationMiddleware,
    inline_middleware.MessageMiddleware,
]


def chain(classes: list[type], view: Any) -> Any:
    handler = view
    for cls in reversed(classes):
        handler = cls(handler)
    return handler


@pytest.fixture
def thread_connections_closed() -> Iterator[None]:
    """The database connection the hooks' thread opened, closed before the test database goes."""
    yield
    asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every hook sent to a thread, by the module's `sync_to_async` or MiddlewareMixin's."""
    sent: list[str] = []

    def counted(function: Any, **kwargs: Any) -> Any:
        sent.append(getattr(function, "__qualname__", repr(function)))
        return sync_to_async(function, **kwargs)

    monkeypatch.setattr(inline_middleware, "sync_to_async", counted)
    monkeypatch.setattr("django.utils.deprecation.sync_to_async", counted)
    return sent


async def answer(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def test_an_async_chain_sends_no_hook_to_a_thread(hops: list[str]) -> None:
    request = RequestFactory().get("/api/products/")
    response = asyncio.run(chain(CLASSES, answer)(request))
    assert response.status_code == 200
    assert hasattr(request, "_messages")  # the hooks ran
    assert hasattr(request, "session")
    assert hasattr(request, "user")
    assert not hops, hops


def test_djangos_own_would_send_each_hook_to_a_thread(hops: list[str]) -> None:
    """The measure of the test above: the same chain of Django's class hops twice."""
    asyncio.run(security.SecurityMiddleware(answer)(RequestFactory().get("/")))
    assert len(hops) == 2, hops


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("thread_connections_closed")
def test_a_changed_session_is_saved_in_a_thread(hops: list[str]) -> None:
    async def remember(request: HttpRequest) -> HttpResponse:
        request.session["seen"] = True
        return HttpResponse("ok")

    request = RequestFactory().get("/")
    response = asyncio.run(chain([inline_middleware.SessionMiddleware], remember)(request))
    key = response.cookies["sessionid"].value
    assert SessionStore(session_key=key)["seen"] is True
    assert len(hops) == 1, hops  # the save, in a thread: the database is not for the loop


def test_a_sync_chain_runs_them_as_django_does(hops: list[str]) -> None:
    def sync_answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    request = RequestFactory().get("/")
    response = chain(CLASSES, sync_answer)(request)
    assert response.status_code == 200
    assert hasattr(request, "user")
    assert not hops


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("thread_connections_closed")
def test_a_login_through_the_async_stack_keeps_its_session() -> None:
    get_user_model().objects.create_superuser("inline", "inline@example.com", "inline-password")

    async def scenario() -> tuple[int, int]:
        client = AsyncClient()
        login = await client.post(
            "/admin/login/?next=/admin/", {"username": "inline", "password": "inline-password"}
        )
        admin = await client.get("/admin/")
        return login.status_code, admin.status_code

    # A CSRF-exempt check is not what this tests: AsyncClient skips CSRF checks, like Client.
    assert asyncio.run(scenario()) == (302, 200)
