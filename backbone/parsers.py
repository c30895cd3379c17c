"""Request parsers of the API (DEFAULT_PARSER_CLASSES).

Kept apart from api_errors.py: DRF imports the parser classes while `rest_framework.views`
is being imported, so this module must not import the views.
"""

from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering 400 for JSON nested deeper than Python's recursion limit
    (the standard decoder raises RecursionError there, which DRF lets through as a 500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
