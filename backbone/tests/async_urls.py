"""Views of test_async_middleware.py: what a request sees of its story, after others ran."""

import asyncio
import logging

from django.http import HttpRequest, JsonResponse
from django.urls import path

from backbone.correlation import current_correlation_id
from backbone.tracing import current_traceparent

log = logging.getLogger("backbone.tests.async_urls")


def _seen() -> dict[str, str | None]:
    log.info("seen")
    return {"correlation_id": current_correlation_id(), "traceparent": current_traceparent()}


async def slow(request: HttpRequest) -> JsonResponse:
    await asyncio.sleep(float(request.GET.get("seconds", "0.3")))  # the others' requests run meanwhile
    return JsonResponse(_seen())


def sync(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_seen())


urlpatterns = [path("slow/", slow), path("sync/", sync)]
