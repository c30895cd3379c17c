"""The Kafka ACLs that make the single-writer map hold on the broker (docs/security.md).

`emit()`, the system check backbone.E001 and the consumers' `wrong_producer` dead letters keep
honest code honest; ACLs stop a client that is not: with an authorizer on the broker and these
grants, only the relay's principal may write the event topics.

- the relay (one process publishes every context's outbox) gets WRITE on every event topic;
- each context's consumer principal gets READ on the topics it subscribes to and on its
  consumer group, and WRITE on those topics' `<topic>.dlq` (dead-letter copies);
- nothing else: the web process and Celery never talk to Kafka; `manage.py topics` and this
  module's `apply()` run as an administrator (a super user, or CREATE and ALTER on the cluster).

READ and WRITE imply DESCRIBE, which metadata, offset and group-coordinator lookups need.
"""

from dataclasses import dataclass
from typing import Literal

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from .deadletters import dead_letter_topic
from .kafka import admin_config, group_id, physical_topic
from .subscriptions import subscriptions
from .topics import topics

RELAY_PRINCIPAL = "relay"

Resource = Literal["topic", "group"]
Operation = Literal["READ", "WRITE"]


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW `operation` on a literal (physical) topic or group name to `User:<user>`."""

    user: str
    resource: Resource
    name: str
    operation: Operation

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def as_binding(self) -> AclBinding:
        return AclBinding(
            ResourceType.TOPIC if self.resource == "topic" else ResourceType.GROUP,
            self.name,
            ResourcePatternType.LITERAL,
            self.principal,
            "*",
            AclOperation[self.operation],
            AclPermissionType.ALLOW,
        )

    def as_command(self) -> str:
        """The same grant with Kafka's own tool (`bin/kafka-acls.sh`)."""
        return (
            f"kafka-acls.sh --bootstrap-server $KAFKA_BOOTSTRAP_SERVERS --command-config admin.properties "
            f"--add --allow-principal {self.principal} --operation {self.operation.capitalize()} "
            f"--{self.resource} {self.name}"
        )


def planned_grants(*, relay: str = RELAY_PRINCIPAL, principal_prefix: str = "") -> list[Grant]:
    """Every grant the shop needs; consumer principals are `<prefix><context>`."""
    grants = [Grant(relay, "topic", physical_topic(name), "WRITE") for name in topics()]
    for context in subscriptions.contexts():
        user = f"{principal_prefix}{context}"
        grants.append(Grant(user, "group", group_id(context), "READ"))
        for topic in subscriptions.topics_for(context):
            grants.append(Grant(user, "topic", physical_topic(topic), "READ"))
            grants.append(Grant(user, "topic", physical_topic(dead_letter_topic(topic)), "WRITE"))
    return sorted(set(grants))


def apply(grants: list[Grant], *, timeout: float = 15.0) -> int:
    """Create the grants on the broker (existing ones are left as they are); returns how many."""
    admin = AdminClient(admin_config())  # kept referenced until the futures resolve
    futures = admin.create_acls([grant.as_binding() for grant in grants], request_timeout=timeout)
    for future in futures.values():
        future.result(timeout=timeout + 5)
    return len(futures)
