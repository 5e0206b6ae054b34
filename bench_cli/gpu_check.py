"""`make gpu-check`: every GPU measurement matbench publishes, as one prepared call.

Steps, each an ordinary matbench command in its own process (one failing step
does not stop the others), writing ordinary run folders under ``--results``:

1. ``run throughput``: forward+backward time, GFLOP/s, % of the measured bmm peak;
2. ``reproduce song2022-fast-matsqrt`` and ``reproduce gcp-cost`` at full size;
3. ``run stability-gpu``: the stability sweep at 32 x 128 x 128;
4. ``advise`` for sqrt and log at 64x48x48, 32x256x256 and 128x64x64, at
   tolerances 1e-2 and 1e-5 (``--save``: its runs are run folders too);
5. with ``--extended``: ``run compile``, ``run autocast``, ``run cold-start`` and
   ``run eigh-sizes`` (batched eigh at d = 32, 33 and 64, where cuSOLVER's batched
   path is reported to end at 32); inductor compiles every case, so these take
   minutes more, and the CPU rehearsal leaves them out (tests cover the axes);
6. ``compare`` of each run with the latest committed run of the same suite
   (under ``--committed``, default ``results``) that was measured elsewhere,
   written as Markdown beside a ``summary.md`` of every step.

On one H100/H200 the whole check is sized for under 8 minutes. ``--quick`` (what
CI runs, with ``--device cpu``) takes each suite's quick size and advise at 2x8x8,
to prove the script end to end.

On a GPU machine without pydantic (e.g. an image with torch but no venv), install
the wheels first: ``pip install --target /tmp/site pydantic pydantic-core
annotated-types typing-inspection`` (from carried wheels where there is no
network), then ``PYTHONPATH=/tmp/site:. python3 -m bench_cli.gpu_check``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ADVISE_SIZES = ((64, 48), (32, 256), (128, 64))
ADVISE_FUNCS = ("sqrt", "log")
ADVISE_TOLERANCES = ("1e-2", "1e-5")


@dataclass
class Step:
    """One command of the check, and what it left."""

    name: str
    argv: list[str]
    timeout_s: float
    rc: int | None = None
    wall_s: float = 0.0
    folders: list[Path] = field(default_factory=list)
    tail: str = ""


EXTENDED = ("compile", "autocast", "cold-start", "eigh-sizes")


def plan(device: str, results: Path, quick: bool, extended: bool = False) -> list[Step]:
    """The commands, in order; ``quick`` for the CPU rehearsal; ``extended`` adds the
    compile, autocast, cold-start and eigh-size suites (never in the rehearsal)."""
    q = ["--quick"] if quick else []
    common = ["--device", device, "--results", str(results)]
    # The rehearsal proves the script end to end; its limit only stops a true hang. It is
    # beyond CI's own 15 minutes, so a slow or loaded machine never meets it (a 120 s
    # limit once failed the rehearsal on a loaded 2-core VM). On the GPU, 600 s a step.
    limit = 1800.0 if quick else 600.0
    steps = [
        Step("throughput", ["run", "throughput", *q, *common], limit),
        Step("song2022", ["reproduce", "song2022-fast-matsqrt", *q, *common], limit),
        Step("gcp-cost", ["reproduce", "gcp-cost", *q, *common], limit),
        Step("stability-gpu", ["run", "stability-gpu", *q, *common], limit),
    ]
    if extended and not quick:
        steps += [Step(name, ["run", name, *common], limit) for name in EXTENDED]
    sizes = ((2, 8),) if quick else ADVISE_SIZES
    tolerances = ADVISE_TOLERANCES[:1] if quick else ADVISE_TOLERANCES  # one: its path
    # advise keeps its budget (it cuts screening at half of it): the rehearsal's budget is
    # an upper bound that no machine the rehearsal runs on reaches at 2x8x8 (4.6 s quiet,
    # 2-core VM), so every call screens and times.
    budget = "60" if quick else "25"
    for batch, dim in sizes:
        for func in ADVISE_FUNCS:
            for tolerance in tolerances:
                steps.append(
                    Step(
                        f"advise {func} {batch}x{dim}x{dim} tol {tolerance}",
                        [
                            "advise",
                            "--func",
                            func,
                            "--batch",
                            str(batch),
                            "--dim",
                            str(dim),
                            "--tolerance",
                            tolerance,
                            "--budget",
                            budget,
                            "--save",
                            "--device",
                            device,
                            "--results",
                            str(results),
                        ],  # fmt: skip
                        limit,
                    )
                )
    return steps


def _run_folders(results: Path) -> set[Path]:
    """Every run folder under a results root (``<suite>/<run>/run.json``)."""
    return {path.parent for path in results.glob("*/*/run.json")}


def run_step(step: Step, results: Path, python: str = sys.executable) -> Step:
    """Run one step in its own process; keep its exit code, time and the run folders it
    made under ``results``."""
    before = _run_folders(results)
    began = time.monotonic()
    try:
        result = subprocess.run(
            [python, "-m", "bench_cli", *step.argv],
            capture_output=True,
            text=True,
            timeout=step.timeout_s,
        )
        step.rc, text = result.returncode, result.stderr
    except subprocess.TimeoutExpired as exc:
        step.rc = 124
        text = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
    step.wall_s = time.monotonic() - began
    step.folders = sorted(_run_folders(results) - before)
    step.tail = " | ".join(line for line in text.strip().splitlines()[-2:])[:300]
    return step


def committed_run(committed: Path, folder: Path) -> Path | None:
    """The latest run of ``folder``'s suite under ``committed`` measured on another machine."""
    meta = json.loads((folder / "run.json").read_text())
    suite = str(meta["suite"]).removesuffix("-quick")
    candidates = []
    for path in sorted((committed / suite).glob("*/run.json")):
        other = json.loads(path.read_text())
        if path.parent.resolve() != folder.resolve() and other.get("machine_key") != meta.get(
            "machine_key"
        ):
            candidates.append(path.parent)
    return candidates[-1] if candidates else None


def compare(committed: Path, folder: Path, out: Path, python: str = sys.executable) -> str:
    """``matbench compare CPU GPU --format md`` into ``out``; one line saying what happened."""
    reference = committed_run(committed, folder)
    if reference is None:
        return f"no committed run of this suite from another machine under {committed}"
    result = subprocess.run(
        [python, "-m", "bench_cli", "compare", str(reference), str(folder), "--format", "md"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        return f"compare with {reference}: {result.stderr.strip().splitlines()[-1][:200]}"
    target = out / f"compare-{folder.parent.name}.md"
    target.write_text(f"# {folder} against {reference}\n\n{result.stdout}")
    return f"compared with {reference}: {target}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench_cli.gpu_check", description=__doc__)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    parser.add_argument("--quick", action="store_true", help="quick sizes (a CPU rehearsal)")
    parser.add_argument(
        "--extended",
        action="store_true",
        help="also the compile, autocast, cold-start and eigh-sizes suites (minutes more)",
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="run folders")
    parser.add_argument(
        "--committed", type=Path, default=Path("results"), help="where the CPU runs are"
    )
    parser.add_argument("--out", type=Path, default=None, help="summary and comparisons")
    args = parser.parse_args(argv)
    out = args.out or args.results / "gpu-check" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True, exist_ok=True)
    steps = plan(args.device, args.results, args.quick, args.extended)
    lines = [
        f"# gpu-check on {args.device}{' (quick)' if args.quick else ''}",
        "",
        "| step | exit | wall s | run folders | comparison |",
        "|---|---|---|---|---|",
    ]
    began = time.monotonic()
    for number, step in enumerate(steps, 1):
        print(f"[{number}/{len(steps)}] matbench {' '.join(step.argv)}", file=sys.stderr)
        run_step(step, args.results)
        compared = []
        if not step.name.startswith("advise"):
            compared = [compare(args.committed, folder, out) for folder in step.folders]
        print(f"    exit {step.rc} in {step.wall_s:.0f} s: {step.tail}", file=sys.stderr)
        lines.append(
            f"| {step.name} | {step.rc} | {step.wall_s:.0f} | "
            + "<br>".join(str(f) for f in step.folders)
            + " | "
            + "<br>".join(compared)
            + " |"
        )
    lines += ["", f"{len(steps)} steps in {time.monotonic() - began:.0f} s."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"summary: {out / 'summary.md'}", file=sys.stderr)
    failed = [step.name for step in steps if step.rc not in (0,)]
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
