"""Topics come from the apps' declarations (AppConfig.publishes), and so does everything the
backbone derives from them: the single writer, provisioning and the ACLs."""

import pytest
from django.conf import settings
from django.test import override_settings

from backbone.acls import planned_grants
from backbone.contracts import Event
from backbone.kafka import physical_topic
from backbone.provisioning import planned_topics
from backbone.topics import (
    Topic,
    TopicDeclarationError,
    TopicOwnershipError,
    context_of,
    ensure_writer,
    publishing_contexts,
    topics,
)

GREETINGS = "backbone.tests.declaring_apps.greetings"
IMPOSTOR = "backbone.tests.declaring_apps.impostor"


def test_the_shops_topics_are_those_its_apps_declare_each_owned_by_its_app() -> None:
    assert {name: topic.owner for name, topic in topics().items()} == {
        "orders": "orders",
        "stock.reservations": "stock",
        "stock.levels": "stock",
        "payments": "payments",
        "shipments": "shipments",
    }
    assert topics()["stock.levels"] == Topic("stock.levels", key="sku", compacted=True, owner="stock")
    assert publishing_contexts() == {"orders", "stock", "payments", "shipments"}


def test_an_installed_app_that_declares_a_topic_gets_it_provisioned_and_written_by_the_relay() -> None:
    with override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, GREETINGS]):
        assert topics()["greetings"].owner == "greetings"
        ensure_writer("greetings", "greetings")
        with pytest.raises(TopicOwnershipError, match="its single writer is 'greetings'"):
            ensure_writer("greetings", "orders")
        planned = {topic.topic for topic in planned_topics()}
        assert {physical_topic("greetings"), physical_topic("greetings.dlq")} <= planned
        relay_writes = {grant.name for grant in planned_grants() if grant.operation == "WRITE"}
        assert physical_topic("greetings") in relay_writes
    assert "greetings" not in topics()  # forgotten with the app


def test_two_apps_declaring_one_topic_are_refused_with_both_names() -> None:
    with (
        override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, IMPOSTOR]),
        pytest.raises(TopicDeclarationError, match="'orders' is declared by both 'orders' and 'impostor'"),
    ):
        topics()


def test_a_contract_belongs_to_the_installed_app_of_its_module() -> None:
    assert context_of("orders.events") == "orders"
    assert context_of("backbone.tests.test_topics") == "backbone"
    with pytest.raises(LookupError, match="not part of an installed app"):
        context_of("somewhere.else")

    with pytest.raises(LookupError, match=r"somewhere\.else is not part of an installed app"):

        class Stray(Event, topic="orders", key="order_id"):
            __module__ = "somewhere.else"
            order_id: str
