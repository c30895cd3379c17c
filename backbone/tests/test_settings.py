"""The library's settings: BACKBONE read through `backbone_settings`, with defaults, checked at
start-up, following override_settings; the environment variables that set them."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from backbone.conf import KEYS, BackboneSettings, backbone_settings, from_environ
from backbone.consumer.options import RunnerOptions
from backbone.testing.settings import override_backbone
from outbox.options import RelayOptions

ROOT = Path(settings.BASE_DIR)


def settings_messages() -> list[checks.CheckMessage]:
    """What `manage.py check` says about BACKBONE (every registered check, ours filtered)."""
    return [message for message in checks.run_checks() if message.id and message.id[:12] in _OURS]


_OURS = {"backbone.E01", "backbone.W01"}


def test_the_shops_configuration_passes_the_check() -> None:
    assert settings_messages() == []


def test_environment_strings_are_converted() -> None:
    raw = {
        "RELAY_BATCH_SIZE": "500",
        "CONSUMER_RETRY_DELAY_SECONDS": "0.5",
        "CONSUMER_RETRY_SCHEDULE": "1, 5,30",
    }
    with override_settings(BACKBONE={**raw, "EXTRA_HANDLER_MODULES": "a.handlers, b.handlers"}):
        assert settings_messages() == []
        assert backbone_settings.RELAY_BATCH_SIZE == 500
        assert backbone_settings.CONSUMER_RETRY_DELAY_SECONDS == 0.5
        assert backbone_settings.CONSUMER_RETRY_SCHEDULE == (1.0, 5.0, 30.0)
        assert backbone_settings.EXTRA_HANDLER_MODULES == ("a.handlers", "b.handlers")


def test_a_key_left_out_has_its_default() -> None:
    with override_settings(BACKBONE={}):
        assert BackboneSettings.model_fields["RELAY_BATCH_SIZE"].default == backbone_settings.RELAY_BATCH_SIZE
        assert backbone_settings.KAFKA_NAMESPACE == ""
        assert backbone_settings.SERVICE_NAME_PREFIX == "backbone"


def test_a_bad_value_is_named_with_what_was_expected() -> None:
    expected = "BACKBONE[\"RELAY_BATCH_SIZE\"] must be a positive integer, got 'abc'"
    with override_backbone(RELAY_BATCH_SIZE="abc", STATUS_MAX_LAG=-1):
        messages = settings_messages()
        assert {(message.id, message.msg) for message in messages} == {
            ("backbone.E010", expected),
            ("backbone.E010", 'BACKBONE["STATUS_MAX_LAG"] must be an integer, 0 or more, got -1'),
        }
        assert all(message.level == checks.ERROR for message in messages)
        # Code that reads it gets the same words, not a TypeError far from the cause ...
        with pytest.raises(ImproperlyConfigured) as raised:
            _ = backbone_settings.RELAY_BATCH_SIZE
        assert str(raised.value) == expected
        # ... and the other keys keep their values.
        assert settings.BACKBONE["KAFKA_NAMESPACE"] == backbone_settings.KAFKA_NAMESPACE


def test_a_retry_schedule_is_named_whole_and_by_context() -> None:
    with override_backbone(CONSUMER_RETRY_SCHEDULE="1,-5", CONSUMER_RETRY_SCHEDULES={"stock": "1,x"}):
        messages = sorted(message.msg for message in settings_messages())
    assert messages == [
        'BACKBONE["CONSUMER_RETRY_SCHEDULE"] must be seconds separated by commas, none negative, '
        "e.g. '1,5,30' (empty: no schedule), got '1,-5'",
        'BACKBONE["CONSUMER_RETRY_SCHEDULES"]["stock"] must be seconds separated by commas, none '
        "negative, e.g. '1,5,30' (empty: no schedule), got '1,x'",
    ]


def test_a_password_of_the_wrong_type_is_not_shown() -> None:
    with override_backbone(KAFKA_SASL_PASSWORD=123456):
        [message] = settings_messages()
    assert message.msg == 'BACKBONE["KAFKA_SASL_PASSWORD"] must be a string, got a value of type int'


def test_an_unknown_key_is_reported_with_the_likely_one() -> None:
    with override_backbone(RELAY_BATCH_SIZ=10):
        [message] = settings_messages()
    assert (message.id, message.msg) == (
        "backbone.E011",
        'BACKBONE["RELAY_BATCH_SIZ"] is not a setting of the backbone',
    )
    assert message.hint == 'Did you mean BACKBONE["RELAY_BATCH_SIZE"]?'


def test_backbone_must_be_a_dict() -> None:
    with override_settings(BACKBONE=["RELAY_BATCH_SIZE"]):
        [message] = settings_messages()
        assert message.id == "backbone.E012"
        with pytest.raises(ImproperlyConfigured, match="BACKBONE must be a dict"):
            _ = backbone_settings.KAFKA_NAMESPACE


def test_a_former_top_level_setting_is_pointed_at_its_key() -> None:
    with override_settings(RELAY_BATCH_SIZE=10, BACKBONE_EXTRA_HANDLER_MODULES=["x"]):
        messages = {message.msg: message for message in settings_messages()}
    assert set(messages) == {
        "RELAY_BATCH_SIZE is a top-level setting, which the backbone does not read",
        "BACKBONE_EXTRA_HANDLER_MODULES is a top-level setting, which the backbone does not read",
    }
    assert {message.level for message in messages.values()} == {checks.WARNING}
    assert 'BACKBONE["EXTRA_HANDLER_MODULES"]' in messages[next(m for m in messages if "EXTRA" in m)].hint


def test_overrides_are_followed_and_undone(settings) -> None:
    before = backbone_settings.EVENT_MAX_BYTES
    with override_backbone(EVENT_MAX_BYTES=40):
        assert backbone_settings.EVENT_MAX_BYTES == 40
        assert settings.BACKBONE["KAFKA_NAMESPACE"] == backbone_settings.KAFKA_NAMESPACE  # kept
    assert before == backbone_settings.EVENT_MAX_BYTES
    # pytest-django's `settings` fixture, an override_settings per assignment.
    settings.BACKBONE = {**settings.BACKBONE, "EVENT_MAX_BYTES": 41}
    assert backbone_settings.EVENT_MAX_BYTES == 41


def test_a_replaced_backbone_is_read_again_without_the_signal() -> None:
    """As conftest.py sets the run's namespace: an assignment, which sends no setting_changed."""
    original = settings.BACKBONE
    assert original.get("EVENT_MAX_BYTES", 256 * 1024) == backbone_settings.EVENT_MAX_BYTES
    try:
        settings.BACKBONE = {**original, "EVENT_MAX_BYTES": 42}
        assert backbone_settings.EVENT_MAX_BYTES == 42
    finally:
        settings.BACKBONE = original


def test_the_options_objects_take_their_defaults_from_the_settings() -> None:
    with override_backbone(RELAY_BATCH_SIZE=7, OUTBOX_RETENTION_HOURS=2, CONSUMER_BATCH_SIZE=9):
        relay, runner = RelayOptions(), RunnerOptions()
    assert (relay.batch_size, relay.retention.total_seconds(), runner.batch_size) == (7, 7200, 9)
    with override_settings(BACKBONE={}):
        defaults = BackboneSettings()
        assert RelayOptions().poll_interval == defaults.RELAY_POLL_INTERVAL_SECONDS
        assert RunnerOptions().max_attempts == defaults.CONSUMER_MAX_ATTEMPTS


def test_a_context_has_its_own_retry_schedule() -> None:
    with override_backbone(CONSUMER_RETRY_SCHEDULE="1", CONSUMER_RETRY_SCHEDULES={"stock": "2,3"}):
        assert RunnerOptions.from_settings("stock").retry_schedule == (2.0, 3.0)
        assert RunnerOptions.from_settings("orders").retry_schedule == (1.0,)
        assert RunnerOptions.from_settings("stock", retry_schedule=()).retry_schedule == ()


def test_the_environment_variables_keep_their_names() -> None:
    environ = {
        "RELAY_BATCH_SIZE": "abc",
        "KAFKA_NAMESPACE": "ci.",
        "BACKBONE_EXTRA_HANDLER_MODULES": "a.handlers",
        "BACKBONE_ENQUEUE_COOLDOWN_SECONDS": "3",
        "CONSUMER_RETRY_SCHEDULE_STOCK": "1,5",
        "PATH": "/usr/bin",
    }
    assert from_environ(environ) == {
        "RELAY_BATCH_SIZE": "abc",
        "KAFKA_NAMESPACE": "ci.",
        "EXTRA_HANDLER_MODULES": "a.handlers",
        "ENQUEUE_COOLDOWN_SECONDS": "3",
        "CONSUMER_RETRY_SCHEDULES": {"stock": "1,5"},
    }
    assert from_environ({"APP_RELAY_SHARDS": "2", "RELAY_SHARDS": "3"}, prefix="APP_") == {
        "RELAY_SHARDS": "2"
    }


def test_every_key_is_documented() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text()
    missing = [key for key in KEYS if f"`{key}`" not in operations]
    assert not missing, f"docs/operations.md does not name {missing}"
