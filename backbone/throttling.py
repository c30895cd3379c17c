"""Rate limits, counted in Redis through Django's cache: credentials here, and the base class of
the apps' own (orders/throttling.py counts placements per customer).

DRF's throttles keep each client's recent request times in the `default` cache (Redis, keys
under CACHE_KEY_PREFIX). Rates come from `settings.THROTTLE_RATES`, read on every request (not
once at import, as DRF's own throttles do), so they follow the environment and test overrides.

All throttles share one cache client per process (`shared_cache()`): Django's `cache` is one
per thread and async context, so under ASGI every request made a client, a connection pool and a
new Redis connection of its own.

When Redis is unreachable the limit is not enforced: the request goes through and a warning is
logged (fail open). A cache outage must not lock every customer out of logging in or ordering;
the price is that guessing passwords is unthrottled for as long as Redis is down.
"""

import functools
import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

log = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


@functools.cache
def shared_cache() -> BaseCache:
    """The `default` cache, one client for the process (its Redis connection pool is thread safe)."""
    return caches.create_connection("default")


@receiver(setting_changed)
def _forget_shared_cache(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":
        shared_cache.cache_clear()


class SettingsRateThrottle(SimpleRateThrottle):
    """A throttle whose rate is `settings.THROTTLE_RATES[scope]`, failing open on a cache outage."""

    def __init__(self) -> None:
        self.cache = shared_cache()
        super().__init__()

    def get_rate(self) -> str | None:
        if self.scope is None:
            raise ImproperlyConfigured(f"{type(self).__name__} names no throttle scope")
        rate: str = settings.THROTTLE_RATES[self.scope]
        return rate

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as error:
            log.warning("rate limit %r not enforced: the cache (Redis) is unavailable: %s", self.scope, error)
            return True


class LoginAddressThrottle(SettingsRateThrottle):
    """Login attempts per client address (REMOTE_ADDR, or X-Forwarded-For behind
    THROTTLE_NUM_PROXIES trusted proxies)."""

    scope = "login"
    cache_format = "throttle_login_address_%(ident)s"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"ident": self.get_ident(request)}


class LoginUsernameThrottle(SettingsRateThrottle):
    """Login attempts per username, whatever the address: guessing one account's password from
    many addresses is throttled too."""

    scope = "login"
    cache_format = "throttle_login_username_%(ident)s"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        data = getattr(request, "data", None)  # a DRF request; a Django one has only POST
        fields = data if data is not None else request.POST
        if not isinstance(fields, Mapping):
            return None  # a JSON list or scalar: the view answers 400, the address limit counts it
        username = fields.get("username")
        if not isinstance(username, str) or not username:
            return None  # no username, nothing to guess: the address limit still counts it
        # Hashed: a key of any length or characters, and no usernames in Redis.
        return self.cache_format % {"ident": hashlib.sha256(username.casefold().encode()).hexdigest()}


LOGIN_THROTTLES = (LoginAddressThrottle, LoginUsernameThrottle)


def throttle_logins(view: View) -> View:
    """Answer a POST over the login rate with 429 and Retry-After (for Django's admin login,
    which is no DRF view); the API's token view uses LOGIN_THROTTLES directly."""

    @functools.wraps(view)
    def throttled(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            waits = [
                t.wait() for t in (cls() for cls in LOGIN_THROTTLES) if not t.allow_request(request, None)
            ]
            if waits:
                seconds = math.ceil(max((wait or 1) for wait in waits))
                response = HttpResponse(
                    f"Too many login attempts. Try again in {seconds} seconds.\n",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(seconds)
                return response
        return view(request, *args, **kwargs)

    return throttled
