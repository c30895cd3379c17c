"""Make the OpenAPI schema say what every operation can answer, in the one error shape.

Views declare their own outcomes (201, 409, 403, ...). What any operation can answer is added
here, once, so no view has to repeat it and none can forget it:

- 400 (a NUL character in the path, query or a header; field errors where there is input),
- 401 (a wrong or missing token, even on public operations that get one),
- 404 where the path has parameters (a malformed one is a JSON 404 too) or the list is paged,
- 413 and 415 where there is a request body (too large; a media type it does not take),
- 429 with Retry-After where a rate limit applies (ShopAutoSchema asks the view).

ShopAutoSchema also states what DRF checks but drf-spectacular leaves out: a StrictSerializer's
body has `additionalProperties: false` (backbone/serializers.py); a request string has no NUL
character, and one that may not be blank has `minLength: 1` and, where DRF trims it first, a
character that is not a space.

Every 4xx without a body of its own is described as `Error` (backbone/api_errors.py).
"""

import inspect
from importlib.metadata import version
from typing import Any

from django.core import checks
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_array_type
from drf_spectacular.utils import Direction
from rest_framework import serializers

from .serializers import StrictMixin

ERROR = {
    "type": "object",
    "description": "Every 4xx: a sentence for people, and for 400 the field errors, nested like the request.",
    "properties": {
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": True,
            "description": "field -> messages; present on 400 for invalid input",
        },
    },
    "required": ["detail"],
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}

COMMON = {
    "400": "invalid input (field errors), or a NUL character in the path, query or a header",
    "401": "a missing, wrong or expired token (or no credentials where they are required)",
}


class ShopAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the 429 of every operation a rate limit applies to.

    Its two mappers are drf-spectacular's private methods (the ones its extension docs tell
    extensions to call): renamed in a release, these overrides would stop being called and the
    schema would quietly lose what they add. `private_mappers_check` then fails the system
    checks (`manage.py check`, and every command that runs them: migrate, relay, consume).
    """

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is not None and self.view.get_throttles():
            operation["responses"].setdefault("429", TOO_MANY_REQUESTS)
        return operation

    def _map_basic_serializer(self, serializer: Any, direction: Direction) -> dict[str, Any]:
        # drf-spectacular's private mappers are unannotated (untyped_calls_exclude covers its calls
        # from here, not calls through super()).
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)  # type: ignore[no-untyped-call]
        if isinstance(serializer, StrictMixin):
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(self, field: Any, direction: Direction, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)  # type: ignore[no-untyped-call]
        if _request_string(field) and schema.get("type") == "string":
            if not field.allow_blank:
                schema["minLength"] = max(schema.get("minLength", 0), 1)
            # DRF refuses a NUL character in any string, and a blank one after trimming.
            trimmed = field.trim_whitespace and not field.allow_blank
            schema.setdefault("pattern", NOT_BLANK_NO_NUL if trimmed else NO_NUL)
        return schema


# Regular expressions both JSON Schema's (ECMA 262) and Python's `re` read alike.
NO_NUL = r"^[^\u0000]*$"
NOT_BLANK_NO_NUL = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


def _request_string(field: Any) -> bool:
    """A DRF CharField in a body only requests use (responses may hold "" or anything)."""
    request_only = field.write_only or (isinstance(field.parent, StrictMixin) and not field.read_only)
    return isinstance(field, serializers.CharField) and request_only


TOO_MANY_REQUESTS = {
    "description": "over a rate limit (backbone/throttling.py); try again after Retry-After seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
}


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            _complete(operation, has_path_parameters="{" in path)
    return result


def _complete(operation: dict[str, Any], *, has_path_parameters: bool) -> None:
    responses = operation.setdefault("responses", {})
    for status, description in COMMON.items():
        responses.setdefault(status, {"description": description})
    parameters = {parameter["name"] for parameter in operation.get("parameters", [])}
    if has_path_parameters or "page" in parameters:
        responses.setdefault("404", {"description": "no such resource, or a page past the last"})
    if "requestBody" in operation:
        responses.setdefault("413", {"description": "request body over REQUEST_MAX_BODY_BYTES"})
        responses.setdefault("415", {"description": "a body in a media type the operation does not take"})
    for status, response in responses.items():
        if status.startswith("4") and "content" not in response:
            response["content"] = {"application/json": {"schema": ERROR_REF}}


class ListSerializerLengthExtension(OpenApiSerializerFieldExtension):
    """A nested `many=True` serializer says in the schema how many items it takes: drf-spectacular
    drops `allow_empty=False`, `min_length` and `max_length`, so `lines: []` looked valid."""

    target_class = "rest_framework.serializers.ListSerializer"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        field = self.target
        component = auto_schema.resolve_serializer(field.child, direction)
        schema = build_array_type(component.ref)
        minimum = max(field.min_length or 0, 0 if field.allow_empty else 1)
        if minimum:
            schema["minItems"] = minimum
        if field.max_length is not None:
            schema["maxItems"] = field.max_length
        return schema


# The private AutoSchema methods ShopAutoSchema overrides, with the parameters it expects
# (drf-spectacular 0.30.0, the version pinned in constraints.txt).
PRIVATE_MAPPERS = {
    "_map_basic_serializer": ["self", "serializer", "direction"],
    "_map_serializer_field": ["self", "field", "direction", "bypass_extensions"],
}


@checks.register(checks.Tags.compatibility)
def private_mappers_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """drf-spectacular still has the private methods ShopAutoSchema overrides, as it expects."""
    errors: list[checks.CheckMessage] = []
    for name, expected in PRIVATE_MAPPERS.items():
        method = getattr(AutoSchema, name, None)
        found = list(inspect.signature(method).parameters) if callable(method) else None
        if found != expected:
            what = "is gone" if found is None else f"takes ({', '.join(found)})"
            errors.append(
                checks.Error(
                    f"drf-spectacular {version('drf-spectacular')}: AutoSchema.{name} {what}; "
                    f"backbone.openapi.ShopAutoSchema overrides it as ({', '.join(expected)})",
                    hint="Pin drf-spectacular to the version in constraints.txt, or adapt ShopAutoSchema.",
                    obj=ShopAutoSchema,
                    id="backbone.openapi.E001",
                )
            )
    return errors
