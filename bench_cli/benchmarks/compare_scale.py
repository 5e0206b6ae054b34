"""Does compare scale? Two run folders of N records each (default 50,000) are made from
the committed throughput runs of two machines: every record is repeated with a
``replica`` axis until there are N, so the pair holds N/len(template) copies of real
timing records (about 100 samples per mode) and their accuracy records. Then
``matbench compare A B --format csv`` runs in a fresh process, and its wall time, its
peak memory (the child's maximum resident set) and its row count are printed.

    python -m bench_cli.benchmarks.compare_scale [--records 50000]

The issue's target: 50,000 records in under 60 s, in under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = {  # the same suite on two machines: every case aligns
    "A": ROOT / "results" / "throughput" / "20261130T125037Z_intel-xeon-05fb84",
    "B": ROOT / "results" / "throughput" / "20261128T080510Z_amd-epyc-ac9bfb",
}


def make_run(template: Path, target: Path, count: int) -> int:
    """A run folder beside ``template``'s files holding ``count`` records."""
    target.mkdir(parents=True)
    for name in ("run.json", "env.json", "suite.yaml"):
        shutil.copy(template / name, target / name)
    records = [json.loads(x) for x in (template / "records.jsonl").read_text().splitlines()]
    with (target / "records.jsonl").open("w") as out:
        for i in range(count):
            record = dict(records[i % len(records)])
            replica = i // len(records)
            record["case"] = f"{record['case']}-{replica}"
            record["axes"] = {**record["axes"], "replica": replica}
            out.write(json.dumps(record) + "\n")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000, help="records in each run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="matbench-compare-scale-") as tmp:
        folders = {side: Path(tmp) / side for side in TEMPLATES}
        for side, template in TEMPLATES.items():
            make_run(template, folders[side], args.records)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "bench_cli", "compare", str(folders["A"]), str(folders["B"]),
             "--format", "csv"],
            capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    rows = max(0, len(done.stdout.splitlines()) - 1)
    print(f"compare of two runs of {args.records:,} records each: {rows:,} rows")
    print(f"wall {wall:.1f} s, peak resident memory {peak_mib:,.0f} MiB (one run, one machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
