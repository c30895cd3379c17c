"""Request bodies that refuse what they do not know.

DRF ignores keys a serializer has no field for, so `{"lines": [...], "typo_token": "x"}` was
placed as if the typo were not there. A `StrictSerializer` answers 400 with a field error per
unknown key instead, and the OpenAPI schema says `additionalProperties: false` for it
(backbone/openapi.py), so what the schema allows and what the API takes are the same bodies.
"""

from collections.abc import Mapping
from typing import Any, cast

from rest_framework import serializers


# Mixed into a (request) Serializer before the serializer class: unknown keys are 400. Comments,
# not docstrings, here: drf-spectacular describes a body with the docstring of its class's MRO.
class StrictMixin:
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            fields = cast("serializers.Serializer[Any]", self).fields
            writable = {name for name, field in fields.items() if not field.read_only}
            unknown = sorted(str(key) for key in data if key not in writable)
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]  # the serializer's own


# A Serializer whose body may hold its fields only. No docstring: drf-spectacular would make it
# the description of every request body built on it.
class StrictSerializer(StrictMixin, serializers.Serializer[Any]):
    pass
