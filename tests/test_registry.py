"""The registry: options from signatures, single-method layers, gap options in suites."""

import pytest

from bench_cli import registry, spec

# Every method's forward and gradient against the float64 references: test_method_contract.


def test_single_method_layers_need_no_method_key():
    suite = spec.loads(
        "name: s\ninputs: {kind: features, samples: 4, channels: 2}\n"
        "methods:\n  avg: {layer: avg_pool}\nmetrics: [forward_error]\n"
    )
    assert suite.methods[0].method == "direct"


def test_method_options_come_from_keyword_only_parameters():
    fields = registry.options_model("matrix_function", "eig").model_fields
    assert {"func", "p", "gap", "gap_eps", "degree", "nonpositive", "floor_eps"} <= set(fields)
    assert "gap" not in registry.options_model("matrix_function", "eig_dk").model_fields


def test_gap_options_expand_in_a_suite():
    suite = spec.loads(
        "name: g\ninputs: {kind: spd, dim: 3}\nmethods:\n"
        "  e: {layer: matrix_function, func: log, method: eig, gap: [exact, clamp, taylor],"
        " gap_eps: 1.0e-6}\n"
        "metrics: [forward_error]\n"
    )
    assert [m.label for m in suite.methods] == ["e[gap=exact]", "e[gap=clamp]", "e[gap=taylor]"]
    with pytest.raises(spec.SuiteError, match="gap"):
        spec.loads(
            "name: g\ninputs: {kind: spd, dim: 3}\nmethods:\n"
            "  e: {layer: matrix_function, func: log, method: eig, gap: soft}\n"
            "metrics: [forward_error]\n"
        )
