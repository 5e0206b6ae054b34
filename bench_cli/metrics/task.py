"""The ``task`` metric: train a network with the case's layer as its head, report accuracy.

The case's layer and method are the head (avg_pool, bilinear, or o2p with its
func and method; ncut for segmentation); its input family supplies train,
validation and test data (``mosaic``, ``segmentation``). Each of ``seeds`` runs
trains from its own initialisation seed (0, 1, ...: the same for every method and
every data draw), tuned on the validation split (:mod:`bench_cli.tasks.tuning`);
a learning rate whose training breaks ends there and is counted in ``diverged``,
never hidden. A run is bit-identical when repeated on one machine and build; on
another CPU or torch build the last digits may move, so runs compare across machines
through their intervals, not digit by digit. Each record carries
``data_fingerprint``, SHA-256 digests of its train, validation and test tensors, so
the pairing of methods can be checked from the records alone.
"""

from __future__ import annotations

from bench_cli.metrics import NotApplicable, Probe
from bench_cli.metrics.options import TaskOptions

HEADS = ("avg_pool", "bilinear", "o2p", "ncut")


def task(probe: Probe, options: TaskOptions) -> dict:
    from bench_cli.data.textures import CLASSES
    from bench_cli.tasks.regions import train_and_test

    if probe.layer not in HEADS or "train_images" not in probe.inputs:
        raise NotApplicable(
            "the task metric trains avg_pool, bilinear or o2p heads on mosaics, "
            "or ncut on segmentation images"
        )
    data = {name: tensor.detach() for name, tensor in probe.inputs.items()}
    if probe.layer == "ncut":
        from bench_cli.tasks import segments

        runs = [
            segments.run(
                probe.method,
                probe.options,
                data,
                seed=init_seed,
                epochs=options.epochs,
                lr=options.lr,
            )
            for init_seed in range(options.seeds)
        ]
        return {**segments.summarise(runs), "data_fingerprint": data_fingerprint(data)}
    head_options = (
        {k: v for k, v in probe.options.items() if k not in ("eps",)}
        if probe.layer == "bilinear"
        else dict(probe.options)
    )
    runs = [
        train_and_test(
            probe.layer,
            probe.method,
            head_options,
            data,
            seed=init_seed,
            epochs=options.epochs,
            batch=options.batch,
            lr=options.lr,
            classes=len(CLASSES),
        )
        for init_seed in range(options.seeds)
    ]
    accuracies = [r["accuracy"] for r in runs if r["accuracy"] is not None]
    return {
        "accuracy": {"samples": accuracies} if accuracies else None,
        "diverged": sum(r["diverged"] for r in runs),
        "runs": len(runs),
        "epoch_time_s": {"samples": [round(t, 6) for r in runs for t in r["epoch_times"]]},
        "final_loss": [r["loss"] if r["accuracy"] is not None else None for r in runs],
        "tuning": [r["tuned"] for r in runs],
        "data_fingerprint": data_fingerprint(data),
    }


def data_fingerprint(data) -> dict[str, str]:
    """{split: SHA-256 of its tensors (names, dtypes, shapes and bytes), in name order}."""
    import hashlib

    digests = {}
    for split in ("train", "val", "test"):
        if not any(n.startswith(f"{split}_") for n in data):
            continue  # no validation split: the fingerprint is what it was without one
        digest = hashlib.sha256()
        for name in sorted(n for n in data if n.startswith(f"{split}_")):
            tensor = data[name].detach().cpu().contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
            digest.update(tensor.numpy().tobytes())
        digests[split] = digest.hexdigest()
    return digests
