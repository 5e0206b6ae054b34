"""One contract for every registered method, of every layer, plugins included: it runs,
its forward matches the layer's float64 reference (to rounding if it is declared exact),
its gradient matches the float64 reference gradient (to the reference's own accuracy if
exact; finite and of the reference's magnitude if not), and a declared FLOP model is
within 10% of what the method executes (FlopCounterMode and the LAPACK calls; n/a where
it declares none; tests/test_flop_models.py asks the built-ins for the reason). A method
added with one declaration is tested here with no new test file; a plugin registered in a test is
picked up the same way (``all_methods`` reads the registry when called)."""

from __future__ import annotations

import math

import pytest

from bench_cli import registry, runner, spec
from bench_cli.layers import matfun

# Per layer: the options a method needs, and the smallest inputs that exercise it.
OPTIONS = {"matrix_function": "func: sqrt, ", "o2p": "func: sqrt, ", "ncut": "k: 2, sigma: 1.0, "}
INPUTS = {
    "spd": "{kind: spd, batch: 2, dim: 5, condition: 10.0}",  # eigenvalue gaps > 1e-2
    "features": "{kind: features, batch: 2, samples: 12, channels: 4}",
    "ratio": "{kind: ratio, x: 0.5}",
}
# Exact routes agree with the float64 references to ~1e-14 (forward) here; the gradient
# references are analytic (~1e-14) or central differences (~1e-9, measured 2e-10 to
# 7e-10 for the pooling heads), hence 1e-8.
EXACT_FORWARD, EXACT_GRAD = 1e-10, 1e-8
# An approximation at its defaults on these inputs: forward within 50%, and a finite
# gradient of the reference's magnitude (relative error under 2: no explosion, no
# garbage). Measured worst here: svd_topn, which keeps 1 eigenpair of 5, 0.21 forward
# and 1.05 gradient for matrix_function.
APPROX_FORWARD, APPROX_GRAD = 0.5, 2.0


def all_methods() -> list[tuple[str, str]]:
    """Every (layer, method) the registry holds now, plugins loaded."""
    return [(layer.name, name) for layer in registry.layers().values() for name in layer.methods]


def contract_problems(layer_name: str, method: str) -> list[str]:
    """What the method breaks of the contract, measured through the runner in float64."""
    layer = registry.layer(layer_name)
    declared = layer.methods[method]
    metrics = ["forward_error"] + (["grad_error"] if layer.differentiable else [])
    text = (
        f"name: contract\ndtype: float64\ninputs: {INPUTS[layer.input_kinds[0]]}\n"
        f"methods:\n  m: {{layer: {layer_name}, {OPTIONS.get(layer_name, '')}method: {method}}}\n"
        f"metrics: [{', '.join(metrics)}]\n"
    )
    suite = spec.loads(text)
    (case,) = suite.cases()
    bounds = {
        "forward_error": EXACT_FORWARD if declared.exact else APPROX_FORWARD,
        "grad_error": EXACT_GRAD if declared.exact else APPROX_GRAD,
    }
    problems = []
    for record in runner.run_case(case, suite, metrics, timeout=120):
        name, value = record["metric"], record["value"]
        kind = "exact" if declared.exact else "approximate"
        if record["status"] != "ok":
            problems.append(f"{name}: {record['status']}: {record['reason']}")
        elif not (isinstance(value, float) and math.isfinite(value)):
            problems.append(f"{name}: {value!r} is not a finite number")
        elif value > bounds[name]:
            problems.append(f"{name} {value:.2e} > {bounds[name]:g} for a method declared {kind}")
    return problems


def flop_problems(layer_name: str, method: str) -> list[str]:
    """A declared FLOP model against the count (matrix_function and ncut, whose entries
    carry the models: o2p shares matrix_function's entries, the direct heads' model is
    the layer's own, gap_series computes no matrix)."""
    from bench_cli.benchmarks import flop_count

    entry = registry.layer(layer_name).methods[method]
    if layer_name == "matrix_function":
        options = {"func": "sqrt" if "sqrt" in entry.funcs else entry.funcs[0]}
    elif layer_name == "ncut":
        options = {"k": 4, "sigma": 1.0}
    else:
        return []
    case = flop_count.Case(layer_name, method, options)
    result = flop_count.measure(case)
    problems = []
    for part in ("fwd", "bwd"):
        declared, counted = result["declared"][part], result["counted"][part]
        if declared is not None:  # n/a is a declaration too
            outcome = flop_count.verdict(case, part, declared, counted)
            if outcome != "ok":
                problems.append(
                    f"{part} FLOPs: declared {declared:.3g}, counted {counted:.3g}: {outcome}"
                )
    return problems


@pytest.mark.parametrize(
    ("layer", "method"), all_methods(), ids=[f"{l}-{m}" for l, m in all_methods()]
)
def test_every_registered_method_keeps_the_contract(layer, method):
    assert contract_problems(layer, method) + flop_problems(layer, method) == []


def test_a_plugin_method_is_picked_up_and_held_to_the_same_contract(register_method):
    def plugin_sqrt(A, func, p=None):
        """eig_dk under another name (test only)."""
        return matfun.eig_dk_matrix_function(A, func, p)

    def claims_exact(A, func, p=None):
        """Declared exact, returns A itself (test only): the contract must catch it."""
        return A * 1.0

    register_method(plugin_sqrt, exact=True)
    register_method(claims_exact, exact=True)
    found = all_methods()
    assert ("matrix_function", "plugin_sqrt") in found and ("o2p", "plugin_sqrt") in found
    assert contract_problems("matrix_function", "plugin_sqrt") == []
    problems = contract_problems("matrix_function", "claims_exact")
    assert any(p.startswith("forward_error") and "declared exact" in p for p in problems)


def test_a_plugin_with_a_wrong_flop_model_breaks_the_contract(register_method):
    """The FLOP part can fail: a model ten times the work the method does."""
    from bench_cli.layers.declare import EIGH

    def heavy_claim(A, func, p=None):
        """eig_dk, declared at ten times its cost (test only)."""
        return matfun.eig_dk_matrix_function(A, func, p)

    register_method(heavy_claim, exact=True, flops=lambda d, options: (10 * EIGH * d**3, None))
    (problem,) = flop_problems("matrix_function", "heavy_claim")
    assert problem.startswith("fwd FLOPs") and "off by" in problem
    assert contract_problems("matrix_function", "heavy_claim") == []  # accurate, just not cheap
