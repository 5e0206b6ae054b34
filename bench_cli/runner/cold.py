"""The ``first_call`` metric: a case from a cold start, in fresh Python processes.

Warm medians hide what a short job or a notebook pays first: importing torch and
matbench, initialising the device (a CUDA context, cuSOLVER/cuBLAS handles), and the
first forward and backward (kernel selection, lazy initialisation, and for a compiled
case tracing and code generation). Each repeat starts a new interpreter
(``python -m bench_cli.runner.cold``) that rebuilds the case from its parameters, calls
it as the suite does (:mod:`bench_cli.runner.calls`) and reports four intervals:

- ``import_s``: ``import torch`` and the matbench modules the case needs;
- ``init_s``: the device's initialisation, the inputs' transfer to it, and the method's
  wrapping (for a compiled case, ``torch.compile`` loads dynamo and inductor here);
- ``fwd_s``: the first forward; ``bwd_s``: the first backward.

By default inductor's on-disk cache is a new empty folder per process
(``inductor_cache: empty``), so a compiled case compiles from nothing, as on a fresh
machine; ``shared`` keeps the user's cache, as on a second run. The metric lives with
the runner because the child calls the method through the runner's wrapping; the
catalogue names it by path (bench_cli.metrics).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

STEPS = ("import_s", "init_s", "fwd_s", "bwd_s")


def first_call(probe: Any, options: Any) -> dict[str, Any]:
    """``options.repeats`` cold starts of the case; samples of each step in seconds."""
    from bench_cli.metrics import CaseTimeout

    samples: dict[str, list[float]] = {step: [] for step in STEPS}
    for _ in range(options.repeats):
        remaining = None if probe.deadline is None else probe.deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise CaseTimeout("timeout: the case's time limit ran out between cold starts")
        for step, seconds in _one_cold_start(probe.case, options, remaining).items():
            samples[step].append(seconds)
    return {
        step: {"samples": [round(s, 6) for s in values]} for step, values in samples.items()
    } | {"inductor_cache": options.inductor_cache, "repeats": options.repeats}


def _one_cold_start(case: dict[str, Any], options: Any, timeout: float | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="matbench-cold-") as cache:
        env = dict(os.environ)
        if options.inductor_cache == "empty":
            env["TORCHINDUCTOR_CACHE_DIR"] = cache
            env["TRITON_CACHE_DIR"] = os.path.join(cache, "triton")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench_cli.runner.cold", json.dumps(case)],
                capture_output=True, text=True, env=env, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            from bench_cli.metrics import CaseTimeout

            raise CaseTimeout("timeout: a cold start ran past the case's time limit") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise RuntimeError(f"the cold-start process failed: {last}")
    return json.loads(lines[-1])


def _main(params: dict[str, Any]) -> dict[str, float]:
    clock = time.perf_counter
    started = clock()
    import torch

    from bench_cli import registry
    from bench_cli.runner import calls
    from bench_cli.runner.case import _inputs_for
    from bench_cli.spec.model import Case, MethodConfig

    imported = clock()
    config = MethodConfig(
        params["method"], params["method"], params["layer"], params["impl"],
        params["options"], params["options"],
    )  # fmt: skip
    inputs_given = dict(params["inputs"])
    case = Case(
        params["suite"], params["seed"], config, inputs_given, inputs_given,
        params["device"], params["dtype"],
        compile=params.get("compile"), autocast=params.get("autocast"),
    )  # fmt: skip
    device = torch.device(case.device)
    if device.type == "cuda":
        torch.cuda.init()
    inputs = _inputs_for(case, case.seed)  # the runner's own inputs for the case
    run = calls.wrap(
        registry.layer(case.config.layer).build(case.config.method, config.options), case
    )
    _sync(device)
    ready = clock()
    out = run(inputs)
    _sync(device)
    forward = clock()
    leaves = [t for t in inputs.values() if t.requires_grad]
    if out.requires_grad and leaves:
        torch.autograd.grad(out, leaves, torch.randn_like(out))
    _sync(device)
    backward = clock()
    return {
        "import_s": imported - started,
        "init_s": ready - imported,
        "fwd_s": forward - ready,
        "bwd_s": backward - forward,
    }


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    print(json.dumps(_main(json.loads(sys.argv[1]))))
