"""scripts/services.sh starts PostgreSQL from a checkout the `postgres` user cannot enter.

As root the server runs as `postgres`. A clone under /root, or in a `mktemp -d` directory, sits
below a 0700 directory, so that user can reach neither the checkout nor its .services/: the data
directory and the server log must live elsewhere, and commands run as `postgres` must not start
in the checkout. The test copies scripts/ into such a checkout and runs `up`, `status` and `down`
for a throwaway cluster on a port of its own, then removes the cluster.
"""

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from backbone.testing import free_port

ROOT = Path(settings.BASE_DIR)
POSTGRES_HOME = Path("/var/lib/postgresql")


def _postgres_user_exists() -> bool:
    return subprocess.run(["id", "-u", "postgres"], capture_output=True, check=False).returncode == 0


PG_CTLS = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not _postgres_user_exists() or not PG_CTLS,
    reason="the fallback applies to root with a local PostgreSQL server, run as the postgres user",
)


class PrivateCheckout:
    """A copy of scripts/ under a 0700 directory, with a PostgreSQL port of its own."""

    def __init__(self, parent: Path) -> None:
        private = parent / "private"
        private.mkdir(mode=0o700)
        private.chmod(0o700)  # whatever the umask
        self.root = private / "checkout"
        shutil.copytree(ROOT / "scripts", self.root / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
        self.port = free_port()

    def services(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SHOP_PG_PORT": str(self.port), "SHOP_NO_INSTALL": "1"}
        env.pop("DATABASE_URL", None)  # else the script checks that server instead of starting one
        env.pop("SHOP_SERVICES_DIR", None)  # the checkout's own .services/, as in a fresh clone
        return subprocess.run(
            [str(self.root / "scripts" / "services.sh"), *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def fallback_paths(self) -> list[Path]:
        """What the script may leave under the postgres user's home for this checkout."""
        checksum = subprocess.run(
            ["cksum"], input=str(self.root), capture_output=True, text=True, check=True
        ).stdout.split()[0]
        return sorted(POSTGRES_HOME.glob(f"shop-dev-{checksum}*"))

    def remove_cluster(self) -> None:
        """Stop a server the script may have left running, then delete its files."""
        self.services("down", "postgres")
        pg_ctl = PG_CTLS[-1]
        for path in self.fallback_paths():
            if (path / "postmaster.pid").exists():
                subprocess.run(
                    ["runuser", "-u", "postgres", "--", pg_ctl, "-D", path, "-m", "immediate", "stop"],
                    cwd="/",
                    capture_output=True,
                    check=False,
                )
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[PrivateCheckout]:
    checkout = PrivateCheckout(tmp_path)
    try:
        yield checkout
    finally:
        checkout.remove_cluster()
        assert not checkout.fallback_paths(), "the throwaway cluster was not removed"


def test_postgres_starts_reports_and_stops_from_a_private_checkout(checkout: PrivateCheckout) -> None:
    up = checkout.services("up", "postgres")
    output = up.stdout + up.stderr
    assert up.returncode == 0, output
    assert f"PostgreSQL: started on 127.0.0.1:{checkout.port}" in up.stdout
    assert "Permission denied" not in output
    logs = checkout.root / ".services" / "logs"
    for log in logs.glob("*.log"):  # initdb's and pg_ctl's output too
        assert "could not change directory" not in log.read_text(), log.read_text()

    datadir = Path((checkout.root / ".services" / "postgres.datadir").read_text().strip())
    assert datadir.is_relative_to(POSTGRES_HOME), datadir
    # The server log is where the postgres user can write, and still found in .services/logs.
    assert "ready to accept connections" in (logs / "postgres.log").read_text()

    status = checkout.services("status")
    assert "PostgreSQL: running" in status.stdout, status.stdout + status.stderr

    down = checkout.services("down", "postgres")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "PostgreSQL: stopped" in down.stdout
    assert "could not change directory" not in down.stdout + down.stderr
    status = checkout.services("status")
    assert "PostgreSQL: stopped" in status.stdout, status.stdout + status.stderr


def test_a_failed_start_names_its_cause_in_one_line(checkout: PrivateCheckout) -> None:
    with socket.socket() as squatter:  # something else holds the port
        squatter.bind(("127.0.0.1", checkout.port))
        squatter.listen()
        up = checkout.services("up", "postgres")
    assert up.returncode != 0
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1, up.stderr
    assert lines[0].startswith("services: error: PostgreSQL did not start")
    assert "Address already in use" in lines[0]
