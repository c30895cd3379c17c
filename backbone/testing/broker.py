"""A Kafka broker of a test's own: single-node KRaft, on free ports, in a directory of the test's.

It runs the jars `make services` downloaded (`.services/kafka/libs-*`, read-only), so a test
can stop it, start it again (the data stays: `stop()` is a clean shutdown) or give it SASL
users and the StandardAuthorizer, without touching the shared broker.

With `sasl=True` the users of `SASL_USERS` log in with SASL/PLAIN; `admin` is the only super
user, and the only user the broker itself (inter-broker and controller listeners)
authenticates as. Without, the listener is plaintext and every client may do anything.
"""

import base64
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient
from django.conf import settings

from backbone.kafka import admin_config

from .processes import free_port, terminate
from .settings import override_backbone

# `relay2` has no grants until a test gives it some (`kafka_acls --relay-principal relay2`).
SASL_USERS = {
    "admin": "admin-secret",
    "relay": "relay-secret",
    "relay2": "relay2-secret",
    "orders": "orders-secret",
    "stock": "stock-secret",
}


def kafka_libs() -> Path:
    found = sorted((settings.BASE_DIR / ".services" / "kafka").glob("libs-*"))
    if not found or shutil.which("java") is None:
        raise RuntimeError("Kafka jars or Java missing: run `make services` once (it fetches both)")
    return found[-1]


class ThrowawayKafka:
    def __init__(self, directory: Path, *, sasl: bool = False) -> None:
        self.directory = directory
        self.sasl = sasl
        self.port, self.controller_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._formatted = False
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings_for(self, user: str = "admin", password: str | None = None) -> dict[str, str]:
        """The shop's settings (and environment variables) of a process running as `user`
        (plaintext: of any process)."""
        if not self.sasl:
            return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": SASL_USERS[user] if password is None else password,
        }

    def manage(self, user: str, *command: str) -> str:
        """Run a management command as a process whose Kafka principal is `user`."""
        result = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=settings.BASE_DIR,
            env={**os.environ, **self.settings_for(user)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def start(self, timeout: float = 60.0) -> None:
        """Start the broker (formatting its storage the first time) and wait until it answers."""
        if not self._formatted:
            self._format()
        with open(self.directory / "kafka.out", "ab") as out:
            self.process = subprocess.Popen(
                [*self._java(), "kafka.Kafka", str(self.directory / "server.properties")],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready(timeout)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): the topics and their records are there at the next start."""
        if self.process is not None:
            terminate(self.process, grace=30)
            self.process = None

    def _format(self) -> None:
        properties = self.directory / "server.properties"
        properties.write_text(self._server_properties())
        (self.directory / "log4j2.properties").write_text(self._log_properties())
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read it as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            [*self._java(), "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
             "-c", str(properties)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self._formatted = True

    def _wait_until_ready(self, timeout: float) -> None:
        with override_backbone(**self.settings_for("admin")):
            admin = AdminClient(admin_config(log_level=0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(self._exited())
            try:
                admin.list_topics(timeout=1)
                return
            except Exception:  # not up yet
                time.sleep(0.3)
        raise TimeoutError(f"the throwaway Kafka did not answer on {self.bootstrap} within {timeout} s")

    def _exited(self) -> str:
        return "throwaway Kafka exited: " + (self.directory / "kafka.out").read_text(errors="replace")[-2000:]

    def _java(self) -> list[str]:
        java = f"{os.environ['JAVA_HOME']}/bin/java" if os.environ.get("JAVA_HOME") else "java"
        return [
            java, "-Xms256m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp", f"{kafka_libs()}/*",
        ]  # fmt: skip

    def _server_properties(self) -> str:
        protocol = "SASL_PLAINTEXT" if self.sasl else "PLAINTEXT"
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
            f"listeners={protocol}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={protocol}://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={protocol}",
            f"listener.security.protocol.map=CONTROLLER:{protocol},{protocol}:{protocol}",
            f"log.dirs={self.directory / 'data'}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
        ]
        if self.sasl:
            users = " ".join(f'user_{name}="{password}"' for name, password in SASL_USERS.items())
            jaas = (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="admin" password="{SASL_USERS["admin"]}" {users};'
            )
            lines += [
                "sasl.enabled.mechanisms=PLAIN",
                "sasl.mechanism.inter.broker.protocol=PLAIN",
                "sasl.mechanism.controller.protocol=PLAIN",
                f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
                f"listener.name.controller.plain.sasl.jaas.config={jaas}",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                # The broker authenticates to its controller as admin too: no anonymous super user.
                "super.users=User:admin",
                "allow.everyone.if.no.acl.found=false",
            ]
        return "\n".join(lines)

    def _log_properties(self) -> str:
        return "\n".join(
            [
                "status = warn",
                "appender.file.type = File",
                "appender.file.name = file",
                f"appender.file.fileName = {self.directory / 'kafka.log'}",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = WARN",
                "rootLogger.appenderRef.file.ref = file",
            ]
        )
