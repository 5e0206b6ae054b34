"""Does a final ReLU let the membership loss collapse the segmentation features?

The DeepNC backbone once ended in a ReLU. Trained with the membership loss
(the cosine affinity matched to the same-segment indicator), its superpixel
features could reach exactly zero, where the affinity is a constant 1/2 and the
loss stops moving. This trains membership and projector losses with and without
that last ReLU on the same data, seeds and budget, and prints the collapse
diagnostics of the test features side by side: the fraction of zero rows, the
mean cosine within and across true segments, the share of pixels in the largest
predicted segment, and matched accuracy.

    python -m bench_cli.benchmarks.relu_collapse [--data-seeds 0 1] [--epochs 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from bench_cli import env
from bench_cli.fsafe import utc_stamp
from bench_cli.inputs import SegmentationParams, generate_segmentation
from bench_cli.tasks import segments

COLUMNS = ("zero_rows", "cosine_within", "cosine_across", "largest_segment", "matched_accuracy")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seeds", type=int, default=2, help="initialisation seeds per set")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/relu_collapse"))
    args = parser.parse_args(argv)
    rows = []
    for loss in ("membership", "projector"):
        for final_relu in (True, False):
            values: dict[str, list[float]] = {name: [] for name in COLUMNS}
            for data_seed in args.data_seeds:
                params = SegmentationParams(train=24, test=12, size=48, regions=4, superpixels=60)
                generator = torch.Generator().manual_seed(data_seed)
                data = generate_segmentation(params, generator)
                options = {"k": 4, "affinity": "cosine", "sigma": 1.0, "mode": "trained",
                           "loss": loss, "route": "spectral"}  # fmt: skip
                for seed in range(args.seeds):
                    run = segments.run("eig", options, data, seed=seed, epochs=args.epochs,
                                       lr=args.lr, final_relu=final_relu)  # fmt: skip
                    for name in COLUMNS:
                        values[name].append(run[name])
            rows.append(
                {"loss": loss, "final_relu": final_relu,
                 **{name: float(np.mean(v)) for name, v in values.items()}}
            )  # fmt: skip
    from tabulate import tabulate

    print(f"{len(args.data_seeds)} data sets x {args.seeds} seeds, {args.epochs} epochs at "
          f"lr {args.lr}; means over runs of the test-image means")  # fmt: skip
    print(tabulate([[r[k] for k in ("loss", "final_relu", *COLUMNS)] for r in rows],
                   headers=["loss", "final ReLU", *COLUMNS], floatfmt=".3f",
                   tablefmt="github"))  # fmt: skip
    info = env.collect()
    folder = args.out / f"{utc_stamp()}_{info['machine_key']}"
    folder.mkdir(parents=True, exist_ok=True)
    settings = {**vars(args), "out": str(args.out)}
    (folder / "result.json").write_text(
        json.dumps({"env": info, "args": settings, "rows": rows}, indent=1)
    )
    print(f"written: {folder / 'result.json'}")


if __name__ == "__main__":
    main()
