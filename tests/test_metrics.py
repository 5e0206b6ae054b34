"""grad_error, fd_check, stability, throughput and the stability input families."""

import json

import pytest
import torch

from bench_cli import inputs, runner, spec, tables
from bench_cli.layers import matfun
from bench_cli.records import metric_value
from bench_cli.spec import TableSpec

F64 = torch.float64


def _records(text, metrics):
    suite = spec.loads(text)
    out = []
    for case in suite.cases():
        out += runner.run_case(case, suite, metrics, timeout=120)
    return out


def _suite(methods: str, inputs_line: str, metrics: str, dtype: str = "float64") -> str:
    return (
        f"name: m\ndtype: {dtype}\ninputs: {inputs_line}\nmethods:\n{methods}metrics: {metrics}\n"
    )


SPD = "{kind: spd, batch: 3, dim: 6, condition: 100.0}"


@pytest.fixture
def doubled_gradient(register_method):
    """A method whose backward is twice the true gradient: what the metrics must catch."""

    class Doubled(torch.autograd.Function):
        @staticmethod
        def forward(A, func, p):
            return matfun.eig_dk_matrix_function(A, func, p)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.func, ctx.p = inputs[1], inputs[2]

        @staticmethod
        def backward(ctx, grad):
            (A,) = ctx.saved_tensors
            with torch.enable_grad():
                X = A.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(
                    matfun.eig_dk_matrix_function(X, ctx.func, ctx.p), X, grad
                )
            return 2 * g, None, None

    def doubled(A, func, p=None):
        """A deliberately wrong gradient (test only)."""
        return Doubled.apply(A, func, p)

    register_method(doubled)


def test_grad_error_exact_methods_at_rounding_and_a_wrong_gradient_caught(doubled_gradient):
    methods = "".join(
        f"  {m}: {{layer: matrix_function, func: log, method: {m}}}\n"
        for m in ("autograd", "eig", "svd", "eig_dk", "doubled")
    )
    records = {
        r["axes"]["method"]: r
        for r in _records(_suite(methods, SPD, "[grad_error]"), ["grad_error"])
    }
    for method in ("autograd", "eig", "svd", "eig_dk"):
        # Gaps ≥ 6e-3 at condition 1e2: both sides are rounding-exact to ~1e-13.
        assert records[method]["value"] < 1e-12, (method, records[method])
    assert records["doubled"]["value"] == pytest.approx(1.0, rel=1e-9)  # ‖2g − g‖/‖g‖


def test_grad_error_falls_back_to_central_differences():
    text = _suite(
        "  nc: {layer: ncut, method: eig, k: 2, sigma: 1.0}\n  bil: {layer: bilinear}\n",
        "{kind: features, batch: 2, samples: 10, channels: 3}",
        "[grad_error]",
    )
    for record in _records(text, ["grad_error"]):
        # Central differences at h = 1e-6·rms(x): ~1e-9 relative (measured 2e-8 and 6e-9).
        assert record["status"] == "ok" and record["value"] < 1e-6, record


def test_fd_check_curve_and_a_wrong_gradient(doubled_gradient):
    methods = (
        "  good: {layer: matrix_function, func: log, method: eig_dk}\n"
        "  bad: {layer: matrix_function, func: log, method: doubled}\n"
    )
    records = {
        r["axes"]["method"]: r for r in _records(_suite(methods, SPD, "[fd_check]"), ["fd_check"])
    }
    good = records["good"]["value"]
    assert good["steps"] == [2.0**-k for k in range(1, 21)]
    # float64: truncation h² meets rounding ε/h near h ~ 1e-5; the best step is there.
    assert good["min"] < 1e-8 and 2**-20 <= good["argmin"] <= 2**-10
    # The doubled gradient is off by 50% of itself wherever truncation is negligible. At
    # coarse steps truncation can land near the wrong value by chance, which is why the
    # whole curve is recorded, not only its minimum.
    bad = records["bad"]["value"]
    fine = [e for h, e in zip(bad["steps"], bad["errors"], strict=True) if h <= 2**-12]
    assert all(abs(e - 0.5) < 1e-3 for e in fine), fine


def test_stability_largest_k_tilde_is_the_inverse_gap():
    inputs_line = "{kind: spd, batch: 2, dim: 6, condition: 100.0, gap: [1.0e-3, 1.0e-9]}"
    methods = (
        "  ag: {layer: matrix_function, func: log, method: autograd}\n"
        "  dk: {layer: matrix_function, func: log, method: eig_dk}\n"
        "  ty: {layer: matrix_function, func: log, method: svd_taylor, degree: 9}\n"
    )
    records = _records(_suite(methods, inputs_line, "[stability]"), ["stability"])
    for record in records:
        value, gap = record["value"], record["axes"]["gap"]
        assert value["nonfinite_output"] == 0.0
        if record["axes"]["method"] == "ag":
            # λ₁ = 1, λ₂ = 1 − gap: |K̃| = 1/gap, to the eigensolver's accuracy (1e-16/gap).
            assert value["max_k_tilde"] == pytest.approx(1 / gap, rel=1e-5)
        elif record["axes"]["method"] == "dk":
            assert value["max_k_tilde"] is None and not value["exploded"]
        else:  # a degree-9 series: at most (9 + 1)/λ_min = 10/0.01 however small the gap
            assert value["max_k_tilde"] <= 1000 * (1 + 1e-9)


def test_stability_flags_an_exploded_gradient():
    # Three exactly repeated eigenvalues: autograd's K̃ is infinite or ~1e16.
    inputs_line = "{kind: spd, batch: 2, dim: 6, multiplicity: 3}"
    methods = (
        "  ag: {layer: matrix_function, func: log, method: autograd}\n"
        "  dk: {layer: matrix_function, func: log, method: eig_dk}\n"
    )
    records = {
        r["axes"]["method"]: r["value"]
        for r in _records(_suite(methods, inputs_line, "[stability]"), ["stability"])
    }
    assert records["ag"]["k_tilde_infinite"] or records["ag"]["max_k_tilde"] > 1e12
    assert not records["dk"]["exploded"] and records["dk"]["nonfinite_grad"] == 0.0
    assert records["dk"]["grad_norm"] == pytest.approx(
        records["dk"]["reference_grad_norm"], rel=1e-9
    )


def test_spd_gap_multiplicity_and_covariance_families():
    g = torch.Generator().manual_seed(0)
    A = inputs.generate_spd(inputs.SpdParams(batch=2, dim=5, gap=1e-6), g)["A"]
    w = torch.linalg.eigvalsh(A)
    torch.testing.assert_close(
        1 - w[:, -2] / w[:, -1], torch.full((2,), 1e-6, dtype=F64), rtol=1e-7, atol=0
    )
    A = inputs.generate_spd(inputs.SpdParams(batch=1, dim=5, multiplicity=3), g)["A"]
    top = torch.linalg.eigvalsh(A)[0, -3:]
    assert float(top.max() - top.min()) < 1e-14
    params = inputs.CovarianceParams(batch=1, samples=3, channels=6, eps=1e-3)
    w = torch.linalg.eigvalsh(inputs.generate_covariance(params, g)["A"])[0]
    assert int((w > 2e-3).sum()) == 2  # centred 3 samples: rank 2, the rest sits at ε
    with pytest.raises(ValueError, match="not both"):
        inputs.SpdParams(dim=4, gap=1e-3, multiplicity=2)


def test_time_records_flops_labels_rotation_and_derives_rates():
    text = _suite(
        "  ns: {layer: matrix_function, func: sqrt, method: newton_schulz}\n",
        SPD,
        "[{time: {budget_s: 0.01}}]",
        dtype="float32",
    )
    (record,) = _records(text, ["time"])
    value = record["value"]
    assert value["input_sets"] == 4  # 3 x 6 x 6 floats sit in cache: rotate
    assert value["labels"]["threads"] == torch.get_num_threads()
    # newton_schulz, 5 iterations: 12 matmuls forward, 24 backward, 2·6³ FLOPs each, batch 3.
    assert value["fwd"]["flops"] == 3 * 12 * 2 * 6**3
    assert value["fwd_bwd"]["flops"] == 3 * 36 * 2 * 6**3
    rate = metric_value(record, ["fwd_bwd", "flops_per_s"])
    median = metric_value(record, ["fwd_bwd", "median"])
    assert rate == pytest.approx(value["fwd_bwd"]["flops"] / median)
    assert metric_value(record, ["fwd_bwd", "peak_fraction"]) == pytest.approx(
        rate / (value["peak_gflops"] * 1e9)
    )


def test_scaling_exponent_fits_the_log_log_slope():
    records = []
    for method, power in (("cubic", 3.0), ("square", 2.0)):
        for dim in (16, 32, 64, 128):
            records.append(
                {
                    "case": f"{method}{dim}",
                    "metric": "time",
                    "status": "ok",
                    "unit": "s",
                    "value": {"fwd_bwd": {"samples": [1e-9 * dim**power]}},
                    "axes": {"method": method, "dim": dim, "device": "cpu", "dtype": "float32"},
                    "params": {"inputs": {"kind": "spd", "dim": dim}},
                }
            )
    table = tables.build(records, TableSpec(title="t", metric="time.fwd_bwd.median", scaling="dim"))
    assert table.frame.loc["cubic"].iloc[0] == pytest.approx(3.0)
    assert table.frame.loc["square"].iloc[0] == pytest.approx(2.0)
    assert "3.00" in tables.render(table, "md")


def test_accuracy_metrics_are_bit_for_bit_identical_across_runs(cli, write_suite, tmp_path):
    text = (
        "name: repro\ndtype: [float32, float64]\n"
        "inputs: {kind: spd, batch: 3, dim: 5, condition: 1.0e3}\nmethods:\n"
        "  dk: {layer: matrix_function, func: log, method: eig_dk}\n"
        "  ns: {layer: matrix_function, func: sqrt, method: newton_schulz}\n"
        "metrics: [forward_error, grad_error, fd_check, stability]\n"
    )
    suite = write_suite(text)
    assert cli("run", suite, "--out", "a").exit_code == 0
    assert cli("run", suite, "--out", "b").exit_code == 0

    def values(folder):
        lines = (tmp_path / folder / "records.jsonl").read_text().splitlines()
        return {(r["case"], r["metric"]): json.dumps(r["value"]) for r in map(json.loads, lines)}

    first, second = values("a"), values("b")
    assert len(first) == 16 and first == second


def test_a_non_finite_reference_fails_instead_of_hiding_as_zero():
    # Condition 1e12 rounded to float32: the input has eigenvalues <= 0, so the float64
    # reference sqrt is NaN. max(0.0, nan) is 0.0 in Python: the error must not read as 0.
    text = _suite(
        "  ns: {layer: matrix_function, func: sqrt, method: newton_schulz}\n",
        "{kind: spd, batch: 2, dim: 16, condition: 1.0e12}",
        "[grad_error]",
        dtype="float32",
    )
    (record,) = _records(text, ["grad_error"])
    assert record["status"] == "failed" and "reference gradient" in record["reason"]
