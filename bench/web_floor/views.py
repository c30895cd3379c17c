"""The trivial view both floors answer: no database, no serializer, one small JSON body."""

from django.http import HttpRequest, JsonResponse


def trivial(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
