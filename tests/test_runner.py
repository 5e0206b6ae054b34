"""The runner records every outcome and goes on."""

import json

import torch

from bench_cli import runner, spec
from bench_cli.runner import case as runner_case

SUITE = """\
name: outcomes
inputs: {kind: spd, batch: 2, dim: 4, condition: [10.0]}
methods:
  log: {layer: matrix_function, func: log, method: autograd}
metrics:
  - time: {budget_s: 0.002, warmup: 1, min_repeats: 2, max_repeats: 3}
  - forward_error
"""


class ListWriter:
    def __init__(self):
        self.records = []

    def append(self, records):
        self.records.extend(records)


def _run(text, **kwargs):
    suite = spec.loads(text)
    writer = ListWriter()
    summary = runner.run(suite, suite.cases(kwargs.pop("devices", None)), writer, set(), **kwargs)
    return summary, writer.records


def test_ok_records_carry_raw_samples_and_metadata():
    _, records = _run(SUITE)
    by_metric = {r["metric"]: r for r in records}
    samples = by_metric["time"]["value"]["fwd_bwd"]["samples"]
    assert 2 <= len(samples) <= 3 and all(s > 0 for s in samples)
    assert by_metric["time"]["value"]["bwd"]["mode"] == "backward only (forward untimed)"
    assert by_metric["time"]["unit"] == "s"
    assert 0 <= by_metric["forward_error"]["value"] < 1e-5  # float32 eps * small factor
    json.dumps(records, allow_nan=False)  # plain data, no NaN


def test_a_case_that_raises_is_failed_and_the_run_goes_on():
    # lobpcg needs N >= 3k: with k = 2 the N = 5 case raises, the N = 6 case runs.
    text = SUITE.replace(
        "{kind: spd, batch: 2, dim: 4, condition: [10.0]}",
        "{kind: features, batch: 2, samples: [5, 6], channels: 2}",
    )
    text = text.replace(
        "{layer: matrix_function, func: log, method: autograd}",
        "{layer: ncut, method: lobpcg, k: 2, sigma: 1.0}",
    )
    summary, records = _run(text + "dtype: float64\n")
    failed = [r for r in records if r["axes"]["samples"] == 5]
    ok = [r for r in records if r["axes"]["samples"] == 6]
    assert {r["status"] for r in failed} == {"failed"}
    assert all("N >= 3k" in r["reason"] for r in failed)
    assert {r["status"] for r in ok} == {"ok"}
    assert summary.statuses["failed"] == 2 and summary.statuses["ok"] == 2


def test_low_precision_without_kernels_is_unsupported():
    # torch.linalg.eigh has no float16 or bfloat16 kernel on the CPU.
    summary, records = _run(SUITE + "dtype: [float16, bfloat16, float32]\n")
    low = [r for r in records if r["axes"]["dtype"] != "float32"]
    assert {r["status"] for r in low} == {"unsupported"}
    assert all("Half" in r["reason"] or "BFloat16" in r["reason"] for r in low)
    assert summary.statuses["unsupported"] == 4 and summary.statuses["ok"] == 2


def test_absent_device_is_skipped_with_reason():
    _, records = _run(SUITE.replace("name: outcomes", "name: outcomes\ndevice: [cpu, 'cuda:99']"))
    skipped = [r for r in records if r["axes"]["device"] == "cuda:99"]
    assert len(skipped) == 2 and {r["status"] for r in skipped} == {"skipped"}
    assert all("CUDA is not available" in r["reason"] or "absent" in r["reason"] for r in skipped)


def test_nonfinite_output_is_its_own_status():
    # condition 1e60 in float32 puts eigenvalues at or below 0; flooring them at 0 makes
    # log give -inf. The forward error is then 'nonfinite', never a number.
    text = SUITE.replace("condition: [10.0]", "condition: [1e60]").replace(
        "method: autograd}", "method: eig_dk, nonpositive: floor, floor_eps: 0.0}"
    )
    _, records = _run(text + "dtype: float32\n")
    error = next(r for r in records if r["metric"] == "forward_error")
    assert error["status"] == "nonfinite" and error["value"] is None
    assert "non-finite" in error["reason"]


def test_an_eigensolver_error_is_failed_with_its_message():
    # sigma = 1e-30 in float32: 2σ² underflows to 0, the affinity holds 0/0 = NaN and
    # LAPACK's eigh refuses it.
    text = SUITE.replace(
        "{kind: spd, batch: 2, dim: 4, condition: [10.0]}",
        "{kind: features, batch: 2, samples: 6, channels: 3}",
    )
    text = text.replace(
        "{layer: matrix_function, func: log, method: autograd}",
        "{layer: ncut, method: eig, k: 2, sigma: 1e-30}",
    )
    _, records = _run(text + "dtype: float32\n")
    assert {r["status"] for r in records} == {"failed"}
    assert all("eigh" in r["reason"] for r in records)


def test_non_positive_definite_input_fails_with_the_reason():
    # condition 1e60 in float32: the smallest eigenvalues round to 0 or below.
    text = SUITE.replace("condition: [10.0]", "condition: [1e60]") + "dtype: float32\n"
    _, records = _run(text)
    assert {r["status"] for r in records} == {"failed"}
    assert all("not positive definite" in r["reason"] for r in records)


def test_case_time_limit_records_timeout_and_continues():
    slow = SUITE.replace(
        "budget_s: 0.002, warmup: 1, min_repeats: 2, max_repeats: 3",
        "budget_s: 30, warmup: 1, min_repeats: 100000, max_repeats: 100000",
    )
    summary, records = _run(slow + "dtype: [float32, float64]\n", timeout=0.3)
    assert summary.ran == 2
    assert {r["status"] for r in records} == {"failed"}
    assert all(r["reason"].startswith("timeout") for r in records)


def test_each_case_is_seeded_from_its_key():
    suite = spec.loads(SUITE.replace("condition: [10.0]", "condition: [10.0, 20.0]"))
    a, b = suite.cases()
    probe_a, _ = runner_case._prepare(a)
    probe_a2, _ = runner_case._prepare(a)
    probe_b, _ = runner_case._prepare(b)
    assert torch.equal(probe_a.inputs["A"], probe_a2.inputs["A"])
    assert not torch.allclose(probe_a.inputs["A"], probe_b.inputs["A"])


def test_pending_skips_done_pairs_only():
    suite = spec.loads(SUITE)
    (case,) = suite.cases()
    assert runner.pending([case], suite, {(case.key, "time")}) == [(case, ["forward_error"])]
    assert runner.pending([case], suite, {(case.key, "time"), (case.key, "forward_error")}) == []


def test_a_deadline_seen_between_calls_is_a_timeout_like_the_alarm():
    # Under load the timer's own deadline check can run before SIGALRM fires; both paths
    # must record the same kind of reason.
    from bench_cli.metrics import CaseTimeout
    from bench_cli.metrics.timing import _check

    try:
        _check(deadline=0.0)
    except CaseTimeout as exc:
        assert runner_case._reason(exc).startswith("timeout")
    else:
        raise AssertionError("a passed deadline must raise")
