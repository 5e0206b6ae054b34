import json

import pytest

from bench_cli import spec
from bench_cli.errors import UserError

SUITE = """\
name: grid
seed: 1
device: cpu
dtype: [float32, float64]
inputs:
  kind: spd
  batch: 2
  dim: [3, 5]
  condition: [1e2, 1.0e3]
methods:
  exact: {layer: matrix_function, func: sqrt, method: autograd}
  powers: {layer: matrix_function, func: pow, p: [0.5, 2], method: autograd}
metrics: [forward_error]
"""


def test_grid_expands_inputs_methods_devices_dtypes():
    suite = spec.loads(SUITE)
    cases = suite.cases()
    # 3 method configs x 2 dims x 2 conditions x 1 device x 2 dtypes
    assert len(cases) == 3 * 2 * 2 * 1 * 2
    assert [m.label for m in suite.methods] == ["exact", "powers[p=0.5]", "powers[p=2.0]"]
    assert {c.resolved_inputs["dim"] for c in cases} == {3, 5}
    assert {c.dtype for c in cases} == {"float32", "float64"}
    assert len({c.key for c in cases}) == len(cases)


def test_yaml_exponent_floats_are_numbers_not_strings():
    suite = spec.loads(SUITE)
    assert suite.input_axes["condition"] == [100.0, 1000.0]


def test_list_valued_method_options_expand_with_labels():
    text = SUITE.replace("p: [0.5, 2]", "p: [0.5, 2, 3]")
    labels = [m.label for m in spec.loads(text).methods]
    assert labels == ["exact", "powers[p=0.5]", "powers[p=2.0]", "powers[p=3.0]"]


def test_case_keys_ignore_yaml_key_order():
    reordered = """\
metrics: [forward_error]
methods:
  powers: {method: autograd, p: [0.5, 2], func: pow, layer: matrix_function}
  exact: {method: autograd, func: sqrt, layer: matrix_function}
inputs:
  condition: [1e2, 1.0e3]
  dim: [3, 5]
  batch: 2
  kind: spd
dtype: [float32, float64]
device: cpu
seed: 1
name: grid
"""
    keys = {c.key for c in spec.loads(SUITE).cases()}
    assert keys == {c.key for c in spec.loads(reordered).cases()}


def test_case_keys_change_with_values_and_seeds_are_deterministic():
    a = spec.loads(SUITE).cases()
    b = spec.loads(SUITE.replace("seed: 1", "seed: 2")).cases()
    assert not {c.key for c in a} & {c.key for c in b}
    again = spec.loads(SUITE).cases()
    assert [c.seed for c in a] == [c.seed for c in again]
    # The data seed follows the inputs alone: one per input combination, shared by methods.
    inputs = {json.dumps(c.inputs, sort_keys=True) for c in a}
    assert len({c.seed for c in a}) == len(inputs)


def test_case_key_equal_for_int_and_float_spelling_of_a_float():
    one = spec.loads(SUITE.replace("[1e2, 1.0e3]", "[100]")).cases()
    two = spec.loads(SUITE.replace("[1e2, 1.0e3]", "[100.0]")).cases()
    assert [c.key for c in one] == [c.key for c in two]


def test_defaults_are_recorded_but_not_keyed():
    suite = spec.loads(SUITE)
    case = suite.cases()[0]
    assert "spectrum" not in case.inputs and case.resolved_inputs["spectrum"] == "geometric"


def test_fingerprint_ignores_tables_and_description():
    base = spec.loads(SUITE)
    decorated = spec.loads(
        SUITE + "description: new words\ntables: [{title: t, metric: forward_error}]\n"
    )
    assert base.fingerprint == decorated.fingerprint
    assert base.fingerprint != spec.loads(SUITE.replace("dim: [3, 5]", "dim: [3]")).fingerprint


def test_auto_device_resolves_to_a_real_device():
    suite = spec.loads(SUITE.replace("device: cpu", "device: auto"))
    assert {c.device for c in suite.cases()} <= {"cpu", "cuda"}


def test_filters_select_by_axis_glob_and_label():
    cases = spec.loads(SUITE).cases()
    assert {c.resolved_inputs["dim"] for c in spec.select(cases, ["dim=3"])} == {3}
    assert {c.config.label for c in spec.select(cases, ["method=powers*"])} == {
        "powers[p=0.5]",
        "powers[p=2.0]",
    }
    both = spec.select(cases, ["dim=5", "dtype=float64"])
    assert len(both) == 3 * 2 and all(c.dtype == "float64" for c in both)
    with pytest.raises(UserError, match="unknown axis 'dimm'.*did you mean 'dim'"):
        spec.select(cases, ["dimm=3"])


def test_metric_options_validated_and_recorded():
    text = SUITE.replace("metrics: [forward_error]", "metrics: [{time: {budget_s: 0.5}}]")
    metric = spec.loads(text).metrics[0]
    assert metric.options == {"budget_s": 0.5}
    assert metric.resolved["warmup"] >= 1
