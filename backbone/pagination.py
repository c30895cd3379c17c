"""Page-number pagination that refuses malformed pages instead of guessing.

DRF's own falls back to the default page size for `page_size=abc` or `0`, and treats
`page=abc` like a page past the end (404). Here a `page` or `page_size` that is not a positive
whole number (`?page=` empty too) is a 400 field error, a page past the last one is 404, a page
size above the maximum is capped; the OpenAPI parameters say exactly that.
"""

import re
import sys
from typing import Any

from django.core.paginator import Paginator
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

_DIGITS = re.compile(r"[0-9]+")


class PageNumberPagination(pagination.PageNumberPagination):
    last_page_strings = ()  # `page=last` is not an integer; the schema says integer

    def get_page_number(self, request: Request, paginator: Paginator[Any]) -> int:
        # `?page=` is not a number either: 400, like the schema's integer says (not page 1).
        return _positive_int(request.query_params.get(self.page_query_param, "1"), self.page_query_param)

    def get_page_size(self, request: Request) -> int | None:
        name = self.page_size_query_param
        if name and name in request.query_params:
            size = _positive_int(request.query_params[name], name)
            return min(size, self.max_page_size) if self.max_page_size else size
        return self.page_size

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param and self.max_page_size:
                parameter["description"] += f" Larger sizes are capped at {self.max_page_size}."
            if parameter["name"] == self.page_query_param:
                parameter["description"] += " A page past the last one is 404."
        return parameters


def _positive_int(raw: str, name: str) -> int:
    if not _DIGITS.fullmatch(raw) or not raw.strip("0"):
        raise ValidationError({name: ["A positive whole number is required."]})
    digits = raw.lstrip("0")
    # Anything this long is past every last page and every cap; int() of thousands of digits fails.
    return int(digits) if len(digits) <= 18 else sys.maxsize
