"""Every registered layer x method runs through the runner and matches its float64 reference."""

import pytest

from bench_cli import registry, runner, spec

PAIRS = [(layer.name, method) for layer in registry.layers().values() for method in layer.methods]
EXTRA = {"matrix_function": "func: sqrt, ", "o2p": "func: sqrt, ", "ncut": "k: 2, sigma: 1.0, "}
INPUTS = {
    "spd": "{kind: spd, batch: 2, dim: 5, condition: 10.0}",
    "features": "{kind: features, batch: 2, samples: 12, channels: 4}",
    "ratio": "{kind: ratio, x: 0.5}",
}


@pytest.mark.parametrize(("layer", "method"), PAIRS, ids=[f"{l}-{m}" for l, m in PAIRS])
def test_layer_method_matches_its_reference_in_float64(layer, method):
    kind = registry.layer(layer).input_kinds[0]
    text = (
        f"name: reg\ndtype: float64\ninputs: {INPUTS[kind]}\n"
        f"methods:\n  m: {{layer: {layer}, {EXTRA.get(layer, '')}method: {method}}}\n"
        "metrics: [forward_error]\n"
    )
    suite = spec.loads(text)
    (case,) = suite.cases()
    (record,) = runner.run_case(case, suite, ["forward_error"], timeout=60)
    assert record["status"] == "ok", record["reason"]
    if registry.layer(layer).methods[method].exact:
        # Inputs with eigenvalue gaps > 1e-2: each route is accurate to ~1e-14 in float64.
        assert record["value"] < 1e-10
    else:  # approximations at their defaults; their accuracy is tested per method
        assert record["value"] < 0.5


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
