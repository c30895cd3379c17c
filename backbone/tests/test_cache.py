"""The project's cache (`backbone.cache.RedisCache`, the real Redis): one redis-py client per
connection pool, whatever the operations and threads, and a loud stop when Django's cache stops
choosing its client class where backbone/cache.py sets it."""

import threading
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCacheClient
from django.core.exceptions import ImproperlyConfigured

from backbone import cache as backbone_cache

pytestmark = pytest.mark.usefixtures("redis_service")


def test_every_operation_of_every_thread_uses_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = caches.create_connection("default")
    client_class = cache._cache._client
    made: list[object] = []

    def make(**kwargs: Any) -> object:
        made.append(client := client_class(**kwargs))
        return client

    monkeypatch.setattr(cache._cache, "_client", make)

    def use(thread: int) -> None:
        for number in range(20):
            cache.set(f"cache-test-{thread}-{number}", [thread, number], 30)
            assert cache.get(f"cache-test-{thread}-{number}") == [thread, number]

    threads = [threading.Thread(target=use, args=(thread,)) for thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get_many([f"cache-test-3-{number}" for number in range(3)]) == {
        f"cache-test-3-{number}": [3, number] for number in range(3)
    }
    assert len(made) == 1  # Django's own client makes one per operation: 161 here


def test_a_django_that_chooses_its_client_elsewhere_stops_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    class Elsewhere(RedisCacheClient):
        """Stands for a client class Django would choose some other way than `_class`."""

    monkeypatch.setattr(backbone_cache, "RedisCacheClient", Elsewhere)
    with pytest.raises(ImproperlyConfigured, match=r"backbone/cache\.py must follow"):
        backbone_cache.RedisCache("redis://127.0.0.1:1/0", {})
