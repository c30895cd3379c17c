"""One error vocabulary for the whole API.

Every 4xx answer under /api/ is a JSON object with a `detail` sentence. Field errors add
`errors` (field -> messages, nested like the request); a few answers add context of their own
(`shortages` on 409 from Orders, `shipment` on a second dispatch). Clients read `detail` and,
for 400, `errors`: whether DRF, a view, the request guard or Django's URL resolver said no.
"""

from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

API_PREFIX = "/api/"


def error_response(status: int, detail: str) -> JsonResponse:
    """An error answered outside DRF (middleware, URL resolver) in the API's shape."""
    return JsonResponse({"detail": detail}, status=status)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with validation errors moved under `errors` behind a `detail` sentence."""
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        errors = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        response.data = {"detail": _summary(errors), "errors": errors}
    return response


def _summary(errors: dict[str, Any]) -> str:
    # A lone non-field message ("Unable to log in ...") says it best; otherwise name the fields.
    only = errors.get("non_field_errors")
    if set(errors) == {"non_field_errors"} and isinstance(only, list) and len(only) == 1:
        return str(only[0])
    return f"Invalid input: see errors for {', '.join(sorted(errors))}."


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: paths under /api/ that match no route (a malformed UUID, say) answer JSON."""
    if request.path.startswith(API_PREFIX):
        return error_response(404, f"No API resource at {request.path}.")
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: what Django itself refuses outside DRF's reach (too many query or form
    fields, a disallowed Host) answers JSON under /api/ too."""
    if request.path.startswith(API_PREFIX):
        # Only the request-size limits are worth naming; other refusals (a disallowed Host)
        # would tell a stranger about the configuration.
        limits = (TooManyFieldsSent, TooManyFilesSent, RequestDataTooBig)
        detail = f"Bad request: {exception}" if isinstance(exception, limits) else "Bad request."
        return error_response(400, detail)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: should a bug still slip through, an API client gets JSON, not an HTML page."""
    if request.path.startswith(API_PREFIX):
        return error_response(500, "Internal server error; it has been logged.")
    return defaults.server_error(request)
