"""gunicorn's worker class for the web process: uvicorn's, without uvicorn's access log.

backbone/access_log.py writes the access log instead (with the duration and the correlation
id), so uvicorn's line for the same request would only double it.
"""

from typing import Any

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]


class WebWorker(UvicornWorker):  # type: ignore[misc]  # uvicorn-worker is untyped
    CONFIG_KWARGS: dict[str, Any] = {**UvicornWorker.CONFIG_KWARGS, "access_log": False}
