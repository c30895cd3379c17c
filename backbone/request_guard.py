"""Refuse requests no view could handle safely, before any view runs.

- A body larger than DATA_UPLOAD_MAX_MEMORY_SIZE is answered 413. Django enforces that limit
  only when `request.body` or `request.POST` is read; DRF's parsers read the stream directly,
  so without this check any size got through.
- A NUL character in the path, the query string or a header is answered 400: PostgreSQL text
  cannot hold one, so a NUL that reached a query (a sku in the path, a token) raised a 500.
  NULs inside a JSON body are refused field by field by DRF's CharField.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .api_errors import error_response
from .middleware import SyncAndAsyncMiddleware


class RequestGuardMiddleware(SyncAndAsyncMiddleware):
    def handle(self, request: HttpRequest) -> HttpResponse:
        return _refusal(request) or self.respond(request)

    async def ahandle(self, request: HttpRequest) -> HttpResponse:
        return _refusal(request) or await self.arespond(request)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    # Headers and the path only, no I/O: as cheap on the event loop as in a thread.
    return _too_large(request) or _nul_character(request)


def _too_large(request: HttpRequest) -> HttpResponse | None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0:
        return error_response(400, "Content-Length must be a number of bytes.")
    if limit is not None and length > limit:
        return error_response(413, f"Request body of {length} bytes is over the limit of {limit} bytes.")
    return None


def _nul_character(request: HttpRequest) -> HttpResponse | None:
    if "\x00" in request.path_info:
        return error_response(400, "The path must not contain a NUL character.")
    query = request.META.get("QUERY_STRING", "")
    if "\x00" in query or "%00" in query:
        return error_response(400, "The query string must not contain a NUL character.")
    for name, value in request.META.items():
        if name.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
            header = name.removeprefix("HTTP_").replace("_", "-").title()
            return error_response(400, f"Header {header} must not contain a NUL character.")
    return None
