"""The one place the backbone leans on another library's private methods (drf-spectacular's
AutoSchema mappers, overridden by backbone.openapi.ShopAutoSchema) is guarded at start-up: a
release that renames or reshapes them fails `manage.py check`, naming the version."""

from importlib.metadata import version

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from drf_spectacular.openapi import AutoSchema

from backbone.openapi import private_mappers_check


def test_the_pinned_drf_spectacular_has_the_mappers_the_schema_overrides() -> None:
    assert private_mappers_check() == []


def test_a_renamed_mapper_fails_the_start_up_checks_naming_the_version(monkeypatch) -> None:
    # What a release that renames the method looks like to the check.
    monkeypatch.delattr(AutoSchema, "_map_basic_serializer")

    with pytest.raises(SystemCheckError) as failure:
        call_command("check")

    message = str(failure.value)
    assert "backbone.openapi.E001" in message
    assert f"drf-spectacular {version('drf-spectacular')}" in message
    assert "AutoSchema._map_basic_serializer is gone" in message


def test_a_mapper_with_other_parameters_fails_the_check(monkeypatch) -> None:
    def reshaped(self, field, direction, *, bypass_extensions=False, hints=None):
        raise AssertionError("not called by the check")

    monkeypatch.setattr(AutoSchema, "_map_serializer_field", reshaped)

    (error,) = private_mappers_check()
    assert (
        "AutoSchema._map_serializer_field takes (self, field, direction, bypass_extensions, hints)"
        in error.msg
    )
