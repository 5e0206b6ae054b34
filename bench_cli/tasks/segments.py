"""Segmentation (DeepNC): CNN features per superpixel, normalized cuts, the projector loss.

``mode`` chooses what is compared:

- ``nc``: backbone trained end to end through NormalizedCuts (any of its
  methods: eig, autograd, lowrank, lobpcg, subspace) with the projector loss;
- ``untrained``: the same network, never trained;
- ``raw``: normalized cuts on raw per-superpixel intensity statistics (mean,
  spread), the classic Shi-Malik setting, no network;
- ``kmeans``: the unstructured counterpart with the same supervision as NC,
  segment membership and nothing else: the backbone trained so that the
  affinity W of its superpixel features matches the same-segment indicator
  (½ mean (Wᵢⱼ − [sᵢ = sⱼ])²), no eigendecomposition, then k-means on the
  features.

Segments come from k-means on the row-normalised top-k eigenvectors (k = the
number of ground-truth segments of the image), scored with scikit-image's
``adapted_rand_error`` and ``variation_of_information``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bench_cli.layers import normalized_cuts, projector_loss
from bench_cli.layers.ncut import Affinity, affinity, graph_degrees, normalized_affinity
from bench_cli.tasks.regions import Backbone

MODES = ("nc", "untrained", "raw", "kmeans")


def pool(features: torch.Tensor, superpixels: torch.Tensor) -> torch.Tensor:
    """(C, H, W) features -> (N, C) superpixel means."""
    flat, index = features.flatten(1).T, superpixels.flatten()
    n = int(index.max()) + 1
    sums = torch.zeros(n, flat.shape[1], dtype=flat.dtype).index_add(0, index, flat)
    counts = torch.bincount(index, minlength=n).clamp_min(1).to(flat.dtype)
    return sums / counts.unsqueeze(1)


def majority(labels: torch.Tensor, superpixels: torch.Tensor) -> torch.Tensor:
    """The most frequent label inside each superpixel."""
    index = superpixels.flatten()
    one_hot = nn.functional.one_hot(labels.flatten()).to(torch.float64)
    counts = torch.zeros(int(index.max()) + 1, one_hot.shape[1], dtype=torch.float64)
    return counts.index_add(0, index, one_hot).argmax(1)


def raw_features(image: torch.Tensor, superpixels: torch.Tensor) -> torch.Tensor:
    mean = pool(image, superpixels)
    spread = pool((image - image.mean()) ** 2, superpixels).sqrt()
    stats = torch.cat([mean, spread], 1)
    return (stats - stats.mean(0)) / (stats.std(0) + 1e-8)


def segment(
    features: torch.Tensor, k: int, seed: int, spectral: bool, kind: Affinity, sigma: float
) -> np.ndarray:
    """Superpixel labels: k-means on NC eigenvectors (spectral) or on the features."""
    from scipy.cluster.vq import kmeans2

    with torch.no_grad():
        if spectral:
            M = normalized_affinity(affinity(features[None].double(), kind, sigma))[0]
            _, eigvecs = torch.linalg.eigh(M)
            points = eigvecs[:, -k:]
            points = points / points.norm(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            points = features.double()
    _, labels = kmeans2(points.numpy(), k, seed=seed, minit="++")
    return labels


def score(truth: np.ndarray, segmentation: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import adapted_rand_error, variation_of_information

    error, _, _ = adapted_rand_error(truth, segmentation)
    return float(error), float(sum(variation_of_information(truth, segmentation)))


def run(
    method: str,
    options: Mapping[str, Any],
    data: Mapping[str, torch.Tensor],
    *,
    seed: int,
    epochs: int,
    lr: float,
) -> dict[str, Any]:
    mode, kind, sigma = options["mode"], options["affinity"], options["sigma"]
    extra = {k: v for k, v in options.items() if k not in ("mode", "affinity", "sigma", "k")}
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    dtype = data["train_images"].dtype
    backbone = Backbone().to(dtype)
    epoch_times: list[float] = []
    last_loss = 0.0
    if mode in ("nc", "kmeans"):
        optimizer = torch.optim.Adam(backbone.parameters(), lr=lr)
        for _ in range(epochs):
            start = time.perf_counter()
            for i in torch.randperm(len(data["train_images"]), generator=generator).tolist():
                sp = data["train_superpixels"][i]
                if int(sp.max()) < 1:
                    continue  # one superpixel: no pair to cut or to compare
                feats = pool(backbone(data["train_images"][i : i + 1])[0], sp)
                labels = majority(data["train_truth"][i], sp)
                if mode == "nc":
                    k = int(labels.max()) + 1
                    P = normalized_cuts(
                        feats[None],
                        min(k, len(feats) - 1),
                        affinity_kind=kind,
                        sigma=sigma,
                        method=method,
                        **extra,
                    )
                    degrees = graph_degrees(feats[None], kind, sigma)
                    loss = projector_loss(P, labels[None], degrees=degrees)
                else:
                    W = affinity(feats[None], kind, sigma)[0]
                    same = (labels.unsqueeze(0) == labels.unsqueeze(1)).to(W.dtype)
                    loss = 0.5 * ((W - same) ** 2).mean()
                if not torch.isfinite(loss):
                    return {
                        "adapted_rand_error": None,
                        "voi": None,
                        "diverged": True,
                        "epoch_times": epoch_times,
                    }
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                last_loss = float(loss.detach())
            epoch_times.append(time.perf_counter() - start)
    errors, vois = [], []
    for i in range(len(data["test_images"])):
        sp, truth = data["test_superpixels"][i], data["test_truth"][i]
        k = int(truth.max()) + 1
        with torch.no_grad():
            feats = (
                raw_features(data["test_images"][i], sp)
                if mode == "raw"
                else pool(backbone(data["test_images"][i : i + 1])[0], sp)
            )
        predicted = segment(
            feats,
            min(k, len(feats) - 1),
            seed,
            spectral=mode != "kmeans",
            kind="gaussian" if mode == "raw" else kind,
            sigma=sigma,
        )
        error, voi = score(truth.numpy(), predicted[sp.numpy()])
        errors.append(error)
        vois.append(voi)
    return {
        "adapted_rand_error": float(np.mean(errors)),
        "voi": float(np.mean(vois)),
        "diverged": not math.isfinite(last_loss),
        "epoch_times": epoch_times,
    }


def summarise(runs: Sequence[dict]) -> dict[str, Any]:
    ok = [r for r in runs if r["adapted_rand_error"] is not None]
    return {
        "adapted_rand_error": {"samples": [r["adapted_rand_error"] for r in ok]} if ok else None,
        "voi": {"samples": [r["voi"] for r in ok]} if ok else None,
        "diverged": sum(r["diverged"] for r in runs),
        "runs": len(runs),
        "epoch_time_s": {"samples": [round(t, 6) for r in runs for t in r["epoch_times"]]},
    }
