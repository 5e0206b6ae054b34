"""The verdicts on compile and autocast, each shown failing on a deliberately wrong
measurement: compile pays only where the interval of compiled/eager lies below 1, and an
autocast verdict moves when the error under autocast does."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench_cli import compile_amp

ROOT = Path(__file__).resolve().parents[1]


def _latest(suite: str) -> list[dict]:
    folder = sorted((ROOT / "results" / suite).iterdir())[-1]
    return [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]


def _scaled(records, method, dim, factor):
    """The compiled case's per-round ratios times ``factor`` (its samples too)."""
    out = copy.deepcopy(records)
    for r in out:
        if (r["metric"] == "time" and r["axes"]["method"] == method
                and r["axes"]["dim"] == dim and r["axes"]["compile"] != "eager"):  # fmt: skip
            paired = r["value"]["fwd_bwd"]["paired"]
            paired["ratios"] = [x * factor for x in paired["ratios"]]
    return out


def test_compile_pays_only_where_the_interval_is_below_one():
    records = _latest("compile")
    found = {(b.method, b.inputs): b for b in compile_amp.break_even(records)}
    assert found, "the committed compile run has compiled cases"
    for b in found.values():
        assert (b.calls is not None) == (b.high < 1)
        if b.calls is not None:  # the break-even formula, recomputed
            saved = b.eager_s * (1 - b.ratio)
            assert b.calls >= (b.first_call_s - b.eager_first_call_s) / saved
            assert b.calls - 1 < (b.first_call_s - b.eager_first_call_s) / saved
    # Made 2x slower, nothing pays; made 2x faster, everything does.
    slower = compile_amp.break_even(_scaled(records, "newton_schulz", 128, 2.0))
    ns = [b for b in slower if b.method == "newton_schulz" and "dim=128" in b.inputs][0]
    assert ns.calls is None and ns.verdict == "never pays: compiled is slower"
    faster = compile_amp.break_even(_scaled(records, "mpa_lya", 64, 0.5))
    mpa = [b for b in faster if b.method == "mpa_lya" and "dim=64" in b.inputs][0]
    assert mpa.calls is not None and mpa.verdict.startswith("pays after")


def _amp(forward=(1e-6, 3e-3), grad=(2e-6, 1e-2), bwd="bfloat16", low_status="ok"):
    def record(metric, autocast, value, status="ok"):
        return {"case": f"{metric}{autocast}", "metric": metric, "status": status,
                "value": value, "axes": {"method": "m", "autocast": autocast}}  # fmt: skip

    dtypes = {"fwd": {"products": "bfloat16", "decompositions": "float32"},
              "bwd": {"products": bwd, "error": "RuntimeError: x"}}  # fmt: skip
    return [
        record("forward_error", "none", forward[0]),
        record("forward_error", "bfloat16", forward[1], low_status),
        record("grad_error", "none", grad[0]),
        record("grad_error", "bfloat16", grad[1]),
        record("op_dtypes", "bfloat16", dtypes),
    ]


@pytest.mark.parametrize(
    ("records", "verdict"),
    [
        (_amp(), compile_amp.AT_PRECISION),
        (_amp(forward=(0.1, 0.12), grad=(0.3, 0.31)), compile_amp.UNCHANGED),
        (_amp(forward=(1e-6, 0.5)), compile_amp.LOSES),  # the wrong measurement: 100x worse
        (_amp(bwd="raised"), compile_amp.RAISES),
        (_amp(low_status="failed"), compile_amp.RAISES),
    ],
)
def test_each_autocast_verdict_follows_the_measurement(records, verdict):
    (found,) = compile_amp.autocast_verdicts(records)
    assert found.verdict == verdict
    assert f"**{verdict}**" in compile_amp.autocast_summary([found])


def test_the_committed_autocast_run_reads_as_measured():
    found = {(v.method, v.autocast): v for v in compile_amp.autocast_verdicts(_latest("autocast"))}
    # Its adjoint raised under autocast until it ran in the forward's dtype (the earlier
    # committed run says raises; tests/test_autocast_backward.py checks the gradient).
    assert found[("newton_schulz", "bfloat16")].verdict == compile_amp.UNCHANGED
    assert found[("eig_dk", "float16")].verdict == compile_amp.AT_PRECISION
    assert found[("mpa_lya", "bfloat16")].verdict == compile_amp.LOSES
    assert found[("autograd", "float16")].verdict == compile_amp.AT_PRECISION
