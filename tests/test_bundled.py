"""Bundled suites and the docs' schema example stay valid."""

import re
from pathlib import Path

import pytest

from bench_cli import spec

ROOT = Path(__file__).resolve().parent.parent
SUITES = sorted((ROOT / "suites").rglob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_bundled_suite_validates(path):
    assert spec.load(path).cases()


def test_the_docs_schema_example_validates():
    page = (ROOT / "docs" / "suite-schema.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", page, re.S).group(1)
    suite = spec.loads(block, "docs/suite-schema.md")
    assert [m.label for m in suite.methods] == ["exact", "pw[p=0.5]", "pw[p=2.0]"]
