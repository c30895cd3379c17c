"""Loaded by every Python process started with this directory on PYTHONPATH: counts the
process's PostgreSQL commits into COMMIT_LOG_DIR (see backbone/testing/commits.py).

The module is loaded from its file, not as `backbone.testing.commits`: importing the package
would import Django's models before the process has set Django up."""

import importlib.util
import os
from pathlib import Path

if os.environ.get("COMMIT_LOG_DIR"):
    _path = Path(__file__).resolve().parent.parent / "commits.py"
    _spec = importlib.util.spec_from_file_location("_commit_counter", _path)
    if _spec is None or _spec.loader is None:
        raise ImportError(f"cannot load {_path}")
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    _module.install(os.environ["COMMIT_LOG_DIR"])
