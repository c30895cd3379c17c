"""The docs' code snippets show real code: a snippet that names its file (`# orders/events.py`)
declares only classes, functions and decorators that stand in that file, word for word.

docs/library.md's files are an outside project's, not this checkout's: test_outside_project.py
writes them into a new project and runs it."""

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
SNIPPET = re.compile(r"```python\n# (?P<path>[\w/.]+\.py)\n(?P<code>.*?)```", re.S)
DECLARATION = re.compile(r"^\s*(?:@|class |def )")


def _snippets() -> list[tuple[str, str, str]]:
    found = []
    for doc in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        if doc.name == "library.md":
            continue
        for match in SNIPPET.finditer(doc.read_text()):
            found.append((doc.name, match["path"], match["code"]))
    return found


def test_the_docs_have_snippets_to_check() -> None:
    assert len(_snippets()) >= 3


@pytest.mark.parametrize(("doc", "path", "code"), _snippets(), ids=lambda value: str(value)[:40])
def test_a_snippet_declares_what_its_file_declares(doc: str, path: str, code: str) -> None:
    source = ROOT / path
    assert source.exists(), f"{doc} shows {path}, which does not exist"
    lines = {line.strip() for line in source.read_text().splitlines()}
    missing = [
        line.strip() for line in code.splitlines() if DECLARATION.match(line) and line.strip() not in lines
    ]
    assert not missing, f"{doc}: not in {path}: {missing}"
