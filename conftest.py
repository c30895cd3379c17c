"""Suite-wide set-up: the tests run against the real services, so check them first."""

import pytest

from backbone.preflight import ServiceUnavailable, require


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        require()
    except ServiceUnavailable as error:
        pytest.exit(str(error), returncode=3)
