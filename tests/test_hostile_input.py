"""Hostile input: random YAML documents, mutated bundled suites, damaged record files.

Each must end in a validated suite or in one line and exit code 2, never a traceback.
CI runs 250 + 250 + 150 examples.
"""

import copy
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench_cli import spec, store
from bench_cli.cli import app
from bench_cli.records import RECORDS, read_records

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = sorted((ROOT / "suites").rglob("*.yaml"))
RUNNER = CliRunner()


def SETTINGS(examples):  # noqa: N802 -- reads as a decorator
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=10) | st.sampled_from(spec.SUITE_KEYS), children, max_size=5
        )
    ),
    max_leaves=20,
)


def _validate_text(text: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "suite.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = RUNNER.invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 2), (text, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), text
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("matbench: error: "), result.stderr
    return result


@SETTINGS(250)
@given(
    st.one_of(documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=200))
)
@pytest.mark.slow
def test_random_documents_end_in_a_suite_or_one_line(text):
    _validate_text(text)


def _paths(data, prefix=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield prefix + (i,)
            yield from _paths(value, prefix + (i,))


@pytest.mark.slow
@SETTINGS(250)
@given(st.sampled_from(BUNDLED), st.data())
def test_mutated_bundled_suites_end_in_a_suite_or_one_line(path, data):
    original, _ = spec.parse_yaml(path.read_text(), str(path))
    mutated = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(mutated))
        if not paths:
            break
        target = data.draw(st.sampled_from(paths))
        parent = mutated
        for part in target[:-1]:
            parent = parent[part]
        key = target[-1]
        action = data.draw(st.sampled_from(["delete", "replace", "rename"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = data.draw(documents)
        elif isinstance(parent, dict):
            new = data.draw(st.text(max_size=8))
            parent[new] = parent.pop(key)
    _validate_text(yaml.dump(mutated, Dumper=spec.Dumper, allow_unicode=True))


def _record(i: int) -> bytes:
    return (
        json.dumps(
            {
                "case": f"c{i}",
                "metric": "forward_error",
                "status": "ok",
                "value": float(i),
                "axes": {"method": "m", "device": "cpu", "dtype": "float32"},
                "params": {"inputs": {"kind": "spd"}},
            }
        ).encode()
        + b"\n"
    )


GOOD = b"".join(_record(i) for i in range(5))


@SETTINGS(150)
@given(st.integers(0, len(GOOD)), st.binary(max_size=20), st.booleans())
def test_damaged_records_are_skipped_by_line_never_a_traceback(cut, garbage, in_the_middle):
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / RECORDS
        damaged = GOOD[:cut] + garbage + (GOOD[cut:] if in_the_middle else b"")
        file.write_bytes(damaged)
        records = read_records(Path(folder))  # never raises
        whole = damaged[: damaged.rfind(b"\n") + 1]
        lines = set(GOOD.splitlines(keepends=True))
        intact = [line + b"\n" for line in whole.split(b"\n")[:-1] if line + b"\n" in lines]
        # every intact line is read, in order; a damaged line is skipped, or read when the
        # damage left a well-formed record (a changed name inside a string)
        read = iter(json.dumps(r).encode() + b"\n" for r in records)
        assert all(line in read for line in intact)
        assert len(records) <= whole.count(b"\n")
        writer = store.RunWriter(file)  # resuming drops only the torn tail
        assert writer.dropped == damaged[len(whole) :]
        assert file.read_bytes() == whole
