"""Event contracts, the registry (decode, upcast) and the CloudEvents envelope, without services."""

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from backbone.contracts import ContractError, Event, EventRegistry, registry
from backbone.envelope import Envelope, InvalidEnvelope, format_time


class ParcelWeighed(Event, topic="shipments", key="parcel_id", version=3, app_label="shipments"):
    """A contract of the shipments context (app_label), at version 3."""

    parcel_id: str
    grams: int
    note: str = ""


@registry.upcaster("shipments.ParcelWeighed", from_version=1)
def _v1_to_v2(payload: dict) -> dict:
    return {"parcel_id": payload["parcel"], "kilograms": payload["kilograms"]}


@registry.upcaster("shipments.ParcelWeighed", from_version=2)
def _v2_to_v3(payload: dict) -> dict:
    return {"parcel_id": payload["parcel_id"], "grams": int(Decimal(str(payload["kilograms"])) * 1000)}


class ParcelLost(Event, topic="shipments", key="parcel_id", version=2, app_label="shipments"):
    """Version 2 without an upcaster from version 1."""

    parcel_id: str


def test_a_contract_knows_its_topic_key_version_context_and_type_name() -> None:
    event = ParcelWeighed(parcel_id="p-1", grams=1200)

    assert (ParcelWeighed.topic, ParcelWeighed.key_field, ParcelWeighed.contract_version) == (
        "shipments",
        "parcel_id",
        3,
    )
    assert ParcelWeighed.context == "shipments"
    assert ParcelWeighed.type_name == "shipments.ParcelWeighed"
    assert event.key == "p-1"
    assert registry.get("shipments.ParcelWeighed") is ParcelWeighed
    assert "shipments.ParcelWeighed" in registry


def test_events_are_frozen_and_reject_unknown_fields() -> None:
    event = ParcelWeighed(parcel_id="p-1", grams=1)
    with pytest.raises(ValidationError):
        event.grams = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ParcelWeighed(parcel_id="p-1", grams=1, colour="red")  # type: ignore[call-arg]


def test_the_key_must_be_a_field() -> None:
    with pytest.raises(TypeError, match="key field 'nope' is not one of its fields"):

        class Broken(Event, topic="shipments", key="nope", app_label="shipments"):
            parcel_id: str


def test_a_second_contract_with_the_same_type_name_is_refused() -> None:
    separate = EventRegistry()
    separate.register(ParcelWeighed)
    impostor = type("Impostor", (), {"type_name": "shipments.ParcelWeighed", "__qualname__": "Impostor"})
    with pytest.raises(TypeError, match="registered twice"):
        separate.register(impostor)  # type: ignore[arg-type]


def test_decode_reads_the_current_version_as_it_is() -> None:
    event = ParcelWeighed(parcel_id="p-1", grams=700, note="fragile")

    assert registry.decode("shipments.ParcelWeighed", 3, event.to_json()) == event


def test_decode_upcasts_older_versions_step_by_step() -> None:
    decoded = registry.decode("shipments.ParcelWeighed", 1, b'{"parcel": "p-9", "kilograms": 1.25}')

    assert decoded == ParcelWeighed(parcel_id="p-9", grams=1250)


@pytest.mark.parametrize(
    ("type_name", "version", "data", "message"),
    [
        ("shipments.Unheard", 1, b"{}", "unknown event type 'shipments.Unheard'"),
        ("shipments.ParcelWeighed", 4, b"{}", "ParcelWeighed v4 is newer than this consumer reads (v3)"),
        ("shipments.ParcelWeighed", 3, b"{not json", "Invalid JSON"),
        ("shipments.ParcelWeighed", 3, b'{"parcel_id": "p"}', "grams: Field required"),
        ("shipments.ParcelWeighed", 1, b"[1, 2", "invalid JSON"),
        (
            "shipments.ParcelLost",
            1,
            b'{"parcel_id": "p"}',
            "no upcaster for shipments.ParcelLost from version 1",
        ),
    ],
)
def test_decode_explains_what_does_not_match(type_name: str, version: int, data: bytes, message: str) -> None:
    with pytest.raises(ContractError, match=re.escape(message)):
        registry.decode(type_name, version, data)


def _envelope(**changes: object) -> Envelope:
    values = {
        "id": "0b5c4b0e-5c3e-4cf5-9b7e-3b8f0e0b1a11",
        "type": "shipments.ParcelWeighed",
        "source": "/shipments",
        "time": "2026-01-02T03:04:05Z",
        "data_version": 3,
        "correlation_id": "corr-1",
        "causation_id": "cause-1",
    }
    return Envelope(**{**values, **changes})  # type: ignore[arg-type]


def test_the_envelope_round_trips_through_cloudevents_headers() -> None:
    envelope = _envelope()
    headers = dict(envelope.headers())

    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_dataversion"] == b"3"
    assert headers["ce_causationid"] == b"cause-1"
    assert Envelope.from_headers(envelope.headers()) == envelope


def test_the_first_event_of_a_story_has_no_causation_header() -> None:
    envelope = _envelope(causation_id=None)

    assert "ce_causationid" not in dict(envelope.headers())
    assert Envelope.from_headers(envelope.headers()).causation_id is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda h: [(n, v) for n, v in h if n not in {"ce_id", "ce_type"}],
            "missing CloudEvents headers: ce_id, ce_type",
        ),
        (lambda h: [*h[1:], ("ce_specversion", b"0.3")], "unsupported ce_specversion '0.3'"),
        (lambda h: [*h, ("content-type", b"text/plain")], "unsupported content-type 'text/plain'"),
        (lambda h: [*h, ("ce_dataversion", b"three")], "ce_dataversion is not a number"),
        (lambda h: [*h, ("ce_source", b"\xff")], "header ce_source is not UTF-8"),
        (lambda h: None, "missing CloudEvents headers"),
    ],
)
def test_records_that_are_not_cloudevents_are_refused_with_the_reason(change, message: str) -> None:
    with pytest.raises(InvalidEnvelope, match=re.escape(message)):
        Envelope.from_headers(change(_envelope().headers()))


def test_invalid_envelopes_are_contract_errors() -> None:
    assert issubclass(InvalidEnvelope, ContractError)


def test_times_are_rfc3339_in_utc() -> None:
    moment = datetime(2026, 5, 6, 9, 30, 0, tzinfo=timezone(timedelta(hours=2)))

    assert format_time(moment) == "2026-05-06T07:30:00Z"
    assert format_time(datetime(2026, 5, 6, 7, 30, 0, 123000, tzinfo=UTC)) == "2026-05-06T07:30:00.123000Z"
