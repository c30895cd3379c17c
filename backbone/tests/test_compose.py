"""The Docker path: docker-compose.yml and the Dockerfile, validated without a Docker engine.

`docker-compose config` (Debian's docker-compose package, installed by `make tools`) checks the
file against the Compose schema and prints it resolved: anchors merged, variables interpolated.
The assertions below read that resolved form, so they see what Compose would run.
"""

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SASL_OVERRIDE = ROOT / "docker-compose.sasl.yml"

INFRA = {"postgres", "redis", "kafka"}
CONSUMERS = {f"consume-{context}": context for context in ("orders", "stock", "payments", "shipments")}
APP = {"migrate", "web", "relay", *CONSUMERS, "celery-worker", "celery-beat"}
APP_ENVIRONMENT = {
    "DATABASE_URL": "postgres://shop:shop@postgres:5432/shop",
    "REDIS_URL": "redis://redis:6379/0",
    "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
}
# Host ports: the defaults in config/settings/base.py and scripts/services.sh.
HOST_PORTS = {"postgres": (55432, 5432), "redis": (56379, 6379), "kafka": (59092, 59092)}


def _docker_compose(*args: str, files: tuple[Path, ...] = (COMPOSE_FILE,)) -> str:
    if shutil.which("docker-compose") is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be validated: "
            "run `make tools` (or `apt-get install docker-compose`)",
            pytrace=False,
        )
    # A clean environment: the file's own defaults, not whatever this shell exports.
    result = subprocess.run(
        [
            "docker-compose",
            "--project-directory",
            str(ROOT),
            *[arg for file in files for arg in ("-f", str(file))],
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"docker-compose {' '.join(args)} rejected {' + '.join(file.name for file in files)}:\n"
            + result.stderr,
            pytrace=False,
        )
    return result.stdout


@cache
def _resolved(files: tuple[Path, ...] = (COMPOSE_FILE,)) -> dict[str, Any]:
    """The resolved file as a dict.

    PyYAML comes with drf-spectacular; should it be missing, the YAML is read by the Python
    that runs docker-compose, which cannot work without PyYAML.
    """
    text = _docker_compose("config", files=files)
    try:
        import yaml
    except ImportError:
        interpreter = Path(shutil.which("docker-compose")).read_text().splitlines()[0].removeprefix("#!")
        script = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
        result = subprocess.run(
            [*interpreter.split(), "-c", script], input=text, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            pytest.fail(f"cannot read the output of docker-compose config:\n{result.stderr}", pytrace=False)
        return json.loads(result.stdout)
    return yaml.safe_load(text)


def _services() -> dict[str, Any]:
    return _resolved()["services"]


def _published(service: dict[str, Any]) -> set[tuple[int, int]]:
    pairs = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):  # long syntax
            pairs.add((int(port["published"]), int(port["target"])))
        else:  # "[ip:]published:target[/protocol]"
            published, target = str(port).split("/")[0].split(":")[-2:]
            pairs.add((int(published), int(target)))
    return pairs


def test_compose_file_is_valid() -> None:
    _docker_compose("config", "-q")


def test_every_service_is_declared() -> None:
    declared = set(_docker_compose("config", "--services").split())
    missing = (INFRA | APP) - declared
    assert not missing, f"docker-compose.yml lacks services: {sorted(missing)}"


def test_postgres_runs_with_logical_wal() -> None:
    postgres = _services()["postgres"]
    command = postgres["command"]
    command = command if isinstance(command, str) else " ".join(command)
    for setting in ("wal_level=logical", "track_commit_timestamp=on", "max_connections=300"):
        assert f"-c {setting}" in command, f"postgres command lacks -c {setting}: {command}"
    assert postgres["image"].startswith("postgres:16")
    assert postgres["environment"]["POSTGRES_DB"] == "shop"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_infrastructure_publishes_the_local_default_ports() -> None:
    services = _services()
    for name, pair in HOST_PORTS.items():
        assert pair in _published(services[name]), f"{name} should publish {pair[0]}->{pair[1]}"
        assert "healthcheck" in services[name], f"{name} needs a healthcheck"


def test_kafka_is_a_single_kraft_node_without_auto_created_topics() -> None:
    kafka = _services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    env = {key: str(value) for key, value in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "://kafka:9092" in advertised, "containers reach the broker as kafka:9092"
    assert "://127.0.0.1:59092" in advertised, "the host reaches the broker on 127.0.0.1:59092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1"


@pytest.mark.parametrize("name", sorted(APP))
def test_app_service_shares_image_and_environment(name: str) -> None:
    services = _services()
    service = services[name]
    assert service["image"] == services["web"]["image"], f"{name} should run the shop image"
    assert "build" in service, f"{name} should build the image from the Dockerfile"
    for key, value in APP_ENVIRONMENT.items():
        assert service["environment"].get(key) == value, f"{name}: {key} should be {value}"
    assert {"SECRET_KEY", "DEBUG"} <= service["environment"].keys()
    conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
    for infra in INFRA:
        assert conditions.get(infra) == "service_healthy", f"{name} should wait for {infra} to be healthy"
    if name != "migrate":
        assert conditions.get("migrate") == "service_completed_successfully"


def test_app_commands() -> None:
    services = _services()

    def command(name: str) -> str:
        value = services[name]["command"]
        return value if isinstance(value, str) else " ".join(value)

    assert "python manage.py migrate --noinput && python manage.py topics" in command("migrate")
    # Prometheus multiprocess mode: the gunicorn config empties this directory at start.
    assert command("web").startswith("gunicorn -c config/gunicorn_config.py config.asgi")
    assert services["web"]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus-web"
    assert "0.0.0.0:8000" in command("web")
    assert (8000, 8000) in _published(services["web"])
    # Metrics on the fixed ports of docs/metrics.md, published on loopback.
    assert command("relay") == "python manage.py relay --metrics-port 9191"
    assert (9191, 9191) in _published(services["relay"])
    for port, (name, context) in enumerate(CONSUMERS.items(), 9192):
        assert command(name) == f"python manage.py consume {context} --metrics-port {port}"
        assert (port, port) in _published(services[name])
    assert command("celery-worker").startswith("celery -A config worker")
    assert command("celery-beat").startswith("celery -A config beat")
    assert services["migrate"].get("restart", "no") == "no", "migrate is one-shot"


def test_relay_and_consumers_are_checked_by_manage_py_status() -> None:
    services = _services()
    for name, only in {"relay": "relay", **CONSUMERS}.items():
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "manage.py", "status", "--check", "--only", only], name


def test_long_running_services_are_restarted() -> None:
    """Compose restarts a service that dies, as scripts/supervise.py does for `make run`."""
    services = _services()
    for name in sorted((INFRA | APP) - {"migrate"}):
        policy = services[name].get("restart", "no")
        assert policy in {"always", "unless-stopped", "on-failure"}, f"{name} has restart: {policy}"


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = _services()
    for name in sorted((INFRA | APP) - {"migrate"}):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} needs a healthcheck"


def test_celery_worker_and_beat_healthchecks_prove_them_alive() -> None:
    services = _services()
    assert "inspect ping" in " ".join(services["celery-worker"]["healthcheck"]["test"])
    beat = " ".join(services["celery-beat"]["healthcheck"]["test"])
    assert "celerybeat-schedule" in beat, "beat is checked by the age of the schedule file it writes"
    assert "/tmp/celerybeat-schedule" in " ".join(services["celery-beat"]["command"])


def test_compose_runs_the_kafka_release_make_services_runs() -> None:
    services_script = (ROOT / "scripts" / "services.sh").read_text()
    version = re.search(r"^KAFKA_VERSION=(\S+)", services_script, re.MULTILINE)
    assert version, "scripts/services.sh should set KAFKA_VERSION"
    assert _services()["kafka"]["image"] == f"apache/kafka:{version.group(1)}"


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        package, separator, version = line.partition("==")
        assert separator, f"{name}: {line!r} should be pinned with =="
        pins[re.sub(r"\[.*\]", "", package).lower().replace("_", "-")] = version
    return pins


def test_the_image_installs_the_runtime_only_with_every_version_pinned() -> None:
    runtime, development, constraints = (
        _pins(name) for name in ("requirements.txt", "requirements-dev.txt", "constraints.txt")
    )
    assert not runtime.keys() & development.keys(), "a package belongs to the runtime or to development"
    assert not {"pytest", "selenium", "mypy", "py-spy", "ruff", "schemathesis"} & runtime.keys()
    for package, version in {**runtime, **development}.items():
        assert constraints.get(package) == version, f"constraints.txt should pin {package}=={version}"
    installs = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "pip install" in line]
    assert installs == ["RUN pip install -r requirements.txt -c constraints.txt"]


def test_dockerfile_runs_gunicorn_as_a_non_root_user() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert next(line for line in lines if line.startswith("FROM")).startswith("FROM python:3.11-slim")
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users, "the Dockerfile should switch to a non-root USER"
    assert users[-1] not in {"root", "0"}, "the image must end as a non-root user"
    assert any(line.startswith("CMD") and "gunicorn" in line for line in lines)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".services"} <= set(ignored)


# --- docker-compose.sasl.yml: SASL users and ACLs (docs/security.md) ----------------------------

WITH_SASL = (COMPOSE_FILE, SASL_OVERRIDE)
# The Kafka principal of each process; web and Celery never talk to Kafka.
PRINCIPALS = {"migrate": "admin", "relay": "relay", **CONSUMERS}
WITHOUT_KAFKA = {"web", "celery-worker", "celery-beat"}


def test_sasl_override_is_valid() -> None:
    _docker_compose("config", "-q", files=WITH_SASL)


def test_sasl_override_gives_each_kafka_process_its_own_principal() -> None:
    services = _resolved(WITH_SASL)["services"]
    users = services["kafka"]["environment"]["KAFKA_LISTENER_NAME_INTERNAL_PLAIN_SASL_JAAS_CONFIG"]
    for name, user in PRINCIPALS.items():
        env = services[name]["environment"]
        assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == ("SASL_PLAINTEXT", "PLAIN"), (
            name
        )
        assert env["KAFKA_SASL_USERNAME"] == user, f"{name} should authenticate as {user}"
        assert f'user_{user}="{env["KAFKA_SASL_PASSWORD"]}"' in users, (
            f"the broker does not know {name}'s password"
        )
    for name in WITHOUT_KAFKA:
        credentials = [key for key in services[name]["environment"] if key.startswith("KAFKA_SASL_")]
        assert not credentials, f"{name} never talks to Kafka and should hold no credentials: {credentials}"


def test_sasl_override_authorizes_every_listener_and_applies_the_acls() -> None:
    services = _resolved(WITH_SASL)["services"]
    kafka = {key: str(value) for key, value in services["kafka"]["environment"].items()}
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert kafka["KAFKA_SUPER_USERS"] == "User:admin"
    protocols = dict(pair.split(":") for pair in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for listener in (entry.split("://")[0] for entry in kafka["KAFKA_LISTENERS"].split(",")):
        assert protocols[listener] == "SASL_PLAINTEXT", f"listener {listener} accepts anonymous clients"
        assert f"KAFKA_LISTENER_NAME_{listener}_PLAIN_SASL_JAAS_CONFIG" in kafka, f"{listener} has no users"
    assert "--command-config" in " ".join(services["kafka"]["healthcheck"]["test"])
    migrate = services["migrate"]["command"]
    migrate = migrate if isinstance(migrate, str) else " ".join(migrate)
    assert migrate.endswith("python manage.py topics && python manage.py kafka_acls --apply"), migrate
