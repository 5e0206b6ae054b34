"""Segmentation (DeepNC): CNN features per superpixel, normalized cuts, the projector loss.

What a method of the segmentation suite is, in three choices:

- ``mode``: ``trained`` (a backbone trained with ``loss``), ``untrained`` (the same
  network, never trained), ``raw`` (per-superpixel intensity statistics, mean and
  spread: the classic Shi-Malik setting, no network), or a trivial prediction that
  looks at no image: ``one_segment`` (every superpixel in one segment) or ``random``
  (each superpixel uniformly into k segments).
- ``loss`` (trained only): ``projector``, the paper's ½‖P − Π_{D^½E}‖² through the
  NormalizedCuts layer (any of its methods: eig, autograd, lowrank, lobpcg,
  subspace), or ``membership``, the same supervision without an eigendecomposition:
  the affinity W of the superpixel features is matched to the same-segment indicator
  (½ mean (Wᵢⱼ − [sᵢ = sⱼ])²).
- ``route``: how segments are read from features: ``spectral`` (k-means on the
  row-normalised top-k eigenvectors of D^-½ W D^-½, exact eigh) or ``kmeans``
  (k-means on the features themselves, rows normalised first for the cosine
  affinity, which sees directions only). k is the image's number of true segments.

The backbone's last layer is linear: a final ReLU let the membership loss drive most
superpixel features to exactly zero (the all-zero features' loss is a constant it
settled at), so :func:`run` records the collapse diagnostics of the test features
(zero rows, cosine within and across true segments) beside the scores
(:mod:`bench_cli.tasks.scoring`).

Training is tuned (:mod:`bench_cli.tasks.tuning`): with validation images, every
learning rate of the grid trains for the epoch budget and the best (learning rate,
epoch) on validation matched accuracy, read through the method's own route, is tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from bench_cli.layers import normalized_cuts, projector_loss
from bench_cli.layers.ncut import Affinity, affinity, normalized_affinity
from bench_cli.tasks import scoring
from bench_cli.tasks.regions import Backbone
from bench_cli.tasks.tuning import Tuned, tune

MODES = ("trained", "untrained", "raw", "one_segment", "random")
TRIVIAL = ("one_segment", "random")
LOSSES = ("projector", "membership")
ROUTES = ("spectral", "kmeans")
DIAGNOSTICS = ("zero_rows", "cosine_within", "cosine_across", "largest_segment")
TASK_OPTIONS = ("mode", "affinity", "sigma", "k", "loss", "route")  # the rest: the method's


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
    features: torch.Tensor, k: int, seed: int, route: str, kind: Affinity, sigma: float | None
) -> np.ndarray:
    """Superpixel labels: k-means on NC eigenvectors (spectral) or on the features."""
    from scipy.cluster.vq import kmeans2

    with torch.no_grad():
        if route == "spectral":
            M = normalized_affinity(affinity(features[None].double(), kind, sigma))[0]
            _, eigvecs = torch.linalg.eigh(M)
            points = eigvecs[:, -k:]
            points = points / points.norm(dim=1, keepdim=True).clamp_min(1e-12)
        else:
            points = features.double()
            if kind == "cosine":  # the affinity sees directions only; so does k-means here
                points = points / points.norm(dim=1, keepdim=True).clamp_min(1e-12)
    _, labels = kmeans2(points.numpy(), k, seed=seed, minit="++")
    return labels


def _images(data: Mapping[str, torch.Tensor], split: str) -> list[tuple[torch.Tensor, ...]]:
    """(image (1, 1, S, S), superpixels, truth) of every image of a split."""
    return [
        (data[f"{split}_images"][i : i + 1], data[f"{split}_superpixels"][i],
         data[f"{split}_truth"][i])
        for i in range(len(data[f"{split}_images"]))
    ]  # fmt: skip


def _loss(feats, labels, loss: str, method: str, kind, sigma, extra) -> torch.Tensor:
    if loss == "projector":
        k = int(labels.max()) + 1
        cut = normalized_cuts(
            feats[None], min(k, len(feats) - 1), affinity_kind=kind, sigma=sigma,
            method=method, return_degrees=True, **extra,
        )  # fmt: skip
        return projector_loss(cut, labels[None])
    W = affinity(feats[None], kind, sigma)[0]
    same = (labels.unsqueeze(0) == labels.unsqueeze(1)).to(W.dtype)
    return 0.5 * ((W - same) ** 2).mean()


def _predict(features_of, images, route, kind, sigma, seed) -> list[tuple[Any, ...]]:
    """(truth, predicted pixel labels, superpixel features, superpixel map) per image, the
    segments read through ``route``."""
    out = []
    for image, sp, truth in images:
        with torch.no_grad():
            feats = features_of(image, sp)
        k = int(truth.max()) + 1
        labels = segment(feats, min(k, len(feats) - 1), seed, route, kind, sigma)
        out.append((truth.numpy(), labels[sp.numpy()], feats.numpy(), sp))
    return out


def _mean_scores(predictions) -> dict[str, float]:
    per_image = [scoring.score(truth, predicted) for truth, predicted, *_ in predictions]
    return {name: float(np.mean([s[name] for s in per_image])) for name in scoring.SCORES}


def _diagnostics(predictions) -> dict[str, float | None]:
    """Collapse diagnostics of the features (None for a prediction without features), and
    the share of pixels in the largest predicted segment, each a mean over the images."""
    parts: dict[str, list[float]] = {name: [] for name in DIAGNOSTICS}
    for truth, predicted, feats, sp in predictions:
        if feats is not None:
            labels = majority(torch.as_tensor(truth), sp).numpy()
            for name, value in scoring.collapse(feats, labels).items():
                parts[name].append(value)
        parts["largest_segment"].append(float(np.bincount(predicted.ravel()).max() / truth.size))
    out: dict[str, float | None] = {}
    for name, values in parts.items():
        finite = [v for v in values if np.isfinite(v)]
        out[name] = float(np.mean(finite)) if finite else None
    return out


def _trivial_predictions(mode: str, test, seed: int) -> list[tuple[Any, ...]]:
    """One segment, or each superpixel into a random one of k, for every test image."""
    rng = np.random.default_rng(seed)
    predictions: list[tuple[Any, ...]] = []
    for _, sp, truth in test:
        count = int(sp.max()) + 1
        labels = (
            scoring.one_segment(count) if mode == "one_segment"
            else scoring.random_segments(count, int(truth.max()) + 1, rng)
        )  # fmt: skip
        predictions.append((truth.numpy(), labels[sp.numpy()], None, sp))
    return predictions


def _train(method, options, data, build, *, seed, epochs, lr) -> Tuned:
    """The backbone trained with ``options``' loss, tuned on the validation images (read
    through ``options``' route) where there are some."""
    kind, sigma, loss, route = (options[k] for k in ("affinity", "sigma", "loss", "route"))
    extra = {k: v for k, v in options.items() if k not in TASK_OPTIONS}
    train = _images(data, "train")
    val = _images(data, "val") if "val_images" in data else []

    def train_epoch(model, optimizer, generator) -> float:
        losses = []
        for i in torch.randperm(len(train), generator=generator).tolist():
            image, sp, truth = train[i]
            if int(sp.max()) < 1:
                continue  # one superpixel: no pair to cut or to compare
            feats = pool(model(image)[0], sp)
            value = _loss(feats, majority(truth, sp), loss, method, kind, sigma, extra)
            if not torch.isfinite(value):
                return float("nan")
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            losses.append(float(value.detach()))
        return float(np.mean(losses)) if losses else float("nan")

    def validate(model) -> float:
        features = _learned_features(model)
        return _mean_scores(_predict(features, val, route, kind, sigma, seed))["matched_accuracy"]

    return tune(build, train_epoch, validate if val else None, lrs=lr, epochs=epochs, seed=seed)


def _learned_features(backbone):
    return lambda image, sp: pool(backbone(image)[0], sp)


def run(
    method: str,
    options: Mapping[str, Any],
    data: Mapping[str, torch.Tensor],
    *,
    seed: int,
    epochs: int,
    lr: float | Sequence[float],
    final_relu: bool = False,
) -> dict[str, Any]:
    """One run (one initialisation seed): test scores, diagnostics, and how it was tuned.
    ``final_relu`` restores the backbone's old last ReLU, for the collapse ablation
    (``python -m bench_cli.benchmarks.relu_collapse``)."""
    mode, kind, sigma, route = (options[k] for k in ("mode", "affinity", "sigma", "route"))
    test = _images(data, "test")
    untuned = {"diverged": 0, "epoch_times": [], "tuned": None}
    if mode in TRIVIAL:
        predictions = _trivial_predictions(mode, test, seed)
        return {**_mean_scores(predictions), **_diagnostics(predictions), **untuned}
    torch.manual_seed(seed)  # the untrained backbone starts where the trained ones do
    dtype = data["train_images"].dtype

    def build() -> nn.Module:
        return Backbone(final_relu=final_relu).to(dtype)

    backbone, outcome = build(), untuned
    if mode == "trained":
        tuned = _train(method, options, data, build, seed=seed, epochs=epochs, lr=lr)
        outcome = {"diverged": tuned.diverged, "epoch_times": tuned.epoch_times,
                   "tuned": tuned.record()}  # fmt: skip
        if tuned.model is None:
            return {**{name: None for name in scoring.SCORES}, **outcome}
        backbone = tuned.model
    if mode == "raw":
        features, kind = (lambda image, sp: raw_features(image[0], sp)), "gaussian"
    else:
        features = _learned_features(backbone)
    predictions = _predict(features, test, route, kind, sigma, seed)
    return {**_mean_scores(predictions), **_diagnostics(predictions), **outcome}


def summarise(runs: Sequence[dict]) -> dict[str, Any]:
    """A record's value: per score and diagnostic, the samples over initialisation seeds."""
    ok = [r for r in runs if r["matched_accuracy"] is not None]
    out: dict[str, Any] = {}
    for name in (*scoring.SCORES, *DIAGNOSTICS):
        values = [r[name] for r in ok]
        out[name] = {"samples": values} if values and None not in values else None
    return {
        **out,
        "diverged": sum(r["diverged"] for r in runs),
        "runs": len(runs),
        "epoch_time_s": {"samples": [round(t, 6) for r in runs for t in r["epoch_times"]]},
        "tuning": [r["tuned"] for r in runs],
    }
