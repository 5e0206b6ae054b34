"""One declaration per method: a function plus one entry reaches every part of matbench.

The method below is declared here only (function + register_method with its facts);
no other file names it. It must appear in `matbench list methods`, in a FLOP
(GFLOP/s) table and a stability (max |K̃|) table, and among advise's candidates with
the settings its entry declares.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench_cli import advice_suites, advise, registry, store
from bench_cli.layers import declare, matfun
from bench_cli.layers.declare import KTilde, Tuning

SUITE = """\
name: declared
inputs: {kind: spd, batch: 2, dim: [6], gap: [1e-3]}
methods:
  new: {layer: matrix_function, func: sqrt, method: clipped_eig, bound: 50.0}
  bare: {layer: matrix_function, func: sqrt, method: undeclared_flops}
metrics:
  - time: {budget_s: 0.002, warmup: 1, min_repeats: 2, max_repeats: 3, modes: [fwd_bwd]}
  - stability
tables:
  - {title: Throughput, metric: time.fwd_bwd.flops_per_s}
  - {title: Largest K, metric: stability.max_k_tilde}
"""


def clipped_eig(A, func, p=None, *, bound: float = 100.0):
    """Exact forward; K̃ clipped to ±bound (declared in a test only)."""
    return matfun.eig_matrix_function(A, func, p, gap="clip", gap_eps=1.0 / bound)


def undeclared_flops(A, func, p=None):
    """eig_dk under another name, registered with no FLOP model (test only)."""
    return matfun.eig_dk_matrix_function(A, func, p)


def _flops(d, options):
    return 11.0 * d**3, 8.0 * d**3


@pytest.fixture
def declared(register_method):
    register_method(
        clipped_eig,
        exact=False,
        funcs=("sqrt", "log"),
        flops=_flops,
        k_tilde=lambda o: KTilde("clip", 1.0 / o["bound"]),
        tuning=Tuning("bound", (100.0,), (10.0, 100.0)),
    )
    register_method(undeclared_flops)


def test_the_entry_is_listed_with_its_facts(declared, cli):
    result = cli("list", "methods")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "clipped_eig" in line]
    assert len(rows) == 2  # matrix_function and o2p share the table
    assert all("approximate" in row and "modelled" in row for row in rows)
    bare = [line for line in result.stdout.splitlines() if "undeclared_flops" in line]
    assert bare and all("n/a" in row for row in bare)


def test_flop_and_stability_tables_read_the_entry(declared, cli, write_suite):
    result = cli("run", write_suite(SUITE), "--out", "run")
    assert result.exit_code == 0, result.output
    run = Path.cwd() / "run"  # the cli fixture runs in a temporary folder
    records = store.RunFolder(run).records()
    by = {(r["axes"]["method"], r["metric"]): r for r in records}
    time_new = by[("new", "time")]
    assert time_new["status"] == "ok", time_new["reason"]
    # The declared model, for the batch of 2 at d = 6: nothing else computes this number.
    assert time_new["value"]["fwd_bwd"]["flops"] == 2 * (11.0 + 8.0) * 6**3
    assert by[("bare", "time")]["value"]["fwd_bwd"]["flops"] is None
    k = by[("new", "stability")]["value"]["max_k_tilde"]
    # Clipped at the declared bound, and far above it unclipped: 1/(gap·λ) ≈ 1e3 here.
    assert k == pytest.approx(50.0)
    assert by[("bare", "stability")]["value"]["max_k_tilde"] is None
    throughput = (run / "tables" / "throughput.md").read_text()
    new_row = next(line for line in throughput.splitlines() if line.startswith("| new"))
    bare_row = next(line for line in throughput.splitlines() if line.startswith("| bare"))
    assert "n/a" not in new_row and "n/a" in bare_row


def test_advise_takes_the_entry_and_its_settings(declared):
    question = advise.Question(func="log", batch=2, dims=[6], budget_s=60.0)
    found = advice_suites.candidates(question)
    assert found["clipped_eig"] == {"method": "clipped_eig", "bound": [10.0, 100.0]}
    short = advice_suites.candidates(advise.Question(func="log", batch=2, dims=[6], budget_s=5.0))
    assert short["clipped_eig"]["bound"] == [100.0]
    assert advice_suites.is_exact({"impl": "clipped_eig"}) is False
    assert advice_suites.is_exact({"impl": "eig_dk"}) is True
    # A func the entry does not declare keeps it out.
    assert "clipped_eig" not in advice_suites.candidates(
        advise.Question(func="invsqrt", batch=2, dims=[6])
    )


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="funcs"):
        declare.entry("x", clipped_eig, exact=False, flops=None, k_tilde=None, funcs=("cbrt",))
    table: dict = {}
    declare.declare(table, "x", exact=True, flops=None, k_tilde=None)(clipped_eig)
    with pytest.raises(ValueError, match="declared twice"):
        declare.declare(table, "x", exact=True, flops=None, k_tilde=None)(clipped_eig)


def test_a_wrong_signature_is_refused_at_registration(register_method):
    def no_func(A):
        return A

    with pytest.raises(Exception, match=r"called with 3 \(A, func, p\): add func, p"):
        register_method(no_func)


def test_every_built_in_matrix_method_declares_its_facts():
    for name, method in registry.layer("matrix_function").methods.items():
        assert method.summary, name
        assert method.flops is not None, f"{name} has no FLOP model"
        assert set(method.funcs) <= set(declare.FUNCS)
