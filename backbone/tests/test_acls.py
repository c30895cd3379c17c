"""The planned ACLs follow the single-writer map (the broker-side proof is test_kafka_acls.py)."""

from backbone.acls import planned_grants
from backbone.deadletters import dead_letter_topic
from backbone.kafka import group_id, physical_topic
from backbone.subscriptions import subscriptions
from backbone.topics import topics

EVENT_TOPICS = {physical_topic(name) for name in topics()}


def test_the_relay_alone_writes_every_event_topic() -> None:
    writers = {(grant.user, grant.name) for grant in planned_grants() if grant.operation == "WRITE"}
    assert {name for user, name in writers if user == "relay"} == EVENT_TOPICS
    assert all(user == "relay" for user, name in writers if name in EVENT_TOPICS)


def test_a_context_reads_its_subscriptions_and_group_and_writes_their_dead_letters() -> None:
    grants = planned_grants(principal_prefix="shop-")
    for context in ("orders", "stock", "payments", "shipments"):
        topics = subscriptions.topics_for(context)
        assert topics, f"{context} subscribes to nothing"
        mine = {
            (grant.operation, grant.resource, grant.name)
            for grant in grants
            if grant.user == f"shop-{context}"
        }
        assert mine == {
            ("READ", "group", group_id(context)),
            *{("READ", "topic", physical_topic(topic)) for topic in topics},
            *{("WRITE", "topic", physical_topic(dead_letter_topic(topic))) for topic in topics},
        }, context


def test_the_commands_are_kafka_acls_commands() -> None:
    relay = next(grant for grant in planned_grants(relay="publisher") if grant.user == "publisher")
    assert relay.as_command().endswith(
        f"--add --allow-principal User:publisher --operation Write --topic {relay.name}"
    )
