"""Django's Redis cache, with one redis-py client per connection pool instead of one per operation.

Django's `RedisCacheClient.get_client()` makes a new `redis.Redis` for every `get` and `set`; a
client is cheap to use but not to make (it fills its table of response callbacks, some 170
entries), and a placed order's rate limit does two operations: about half a millisecond of CPU
per request. redis-py's clients are thread safe, so one per pool serves every thread.
`get_client()` is the hook Django's comment names for custom clients; the choice of client
class (`RedisCache._class`) is not public, so a Django that stops setting it fails here, when the
cache is made, not in a request.

    CACHES = {"default": {"BACKEND": "backbone.cache.RedisCache", "LOCATION": REDIS_URL}}
"""

from collections.abc import Callable
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.core.exceptions import ImproperlyConfigured


class OneClientPerPool(RedisCacheClient):
    # Set and defined by Django's client (not in its type stubs); RedisCache checks them.
    _client: type[redis.Redis]
    _get_connection_pool: Callable[[bool], redis.ConnectionPool]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, redis.Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            # Two threads may both make one: either serves, the pool is the same.
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        if getattr(self, "_class", None) is not RedisCacheClient or not hasattr(
            RedisCacheClient, "_get_connection_pool"
        ):
            raise ImproperlyConfigured(
                "django.core.cache.backends.redis.RedisCache no longer chooses its client class in "
                "`_class`, or its client has no `_get_connection_pool`: backbone/cache.py must follow "
                "this Django version"
            )
        self._class = OneClientPerPool
