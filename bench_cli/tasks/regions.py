"""Region classification (DeepO2P): a small CNN, a pooling head per region, a classifier.

Heads: ``avg_pool`` and ``bilinear`` (the unstructured counterparts) or ``o2p``
with any func and method; ``hidden`` > 0 inserts a hidden fully connected
layer (the paper's DeepO2P-FC). The backbone, head and classifier train end to
end, so the O2P backward is exercised by every step. ``predict: majority`` is
the trivial answer every head is compared with: the most frequent training
class for every test region.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bench_cli.layers import avg_pool, bilinear, o2p
from bench_cli.tasks.tuning import tune


class Backbone(nn.Module):
    """Two convolutions. ``final_relu`` False leaves the last one linear, so features can
    be negative and no loss can park them at an exact zero (the segmentation task's)."""

    def __init__(self, channels: int = 8, final_relu: bool = True):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            *([nn.ReLU()] if final_relu else []),
        )

    def forward(self, images):
        return self.body(images)


def pooled_size(layer: str, channels: int) -> int:
    return {"avg_pool": channels, "bilinear": channels * channels}.get(
        layer, channels * (channels + 1) // 2
    )


class RegionClassifier(nn.Module):
    def __init__(self, layer: str, options: Mapping[str, Any], classes: int, channels: int = 8):
        super().__init__()
        self.layer, self.options = layer, dict(options)
        self.hidden = int(self.options.pop("hidden", 0) or 0)
        self.backbone = Backbone(channels)
        width = pooled_size(layer, channels)
        head: list[nn.Module] = []
        if self.hidden:
            head += [nn.Linear(width, self.hidden), nn.ReLU()]
            width = self.hidden
        self.classifier = nn.Sequential(*head, nn.Linear(width, classes))

    def pool(self, features, masks):
        if self.layer == "avg_pool":
            return avg_pool(features, masks)
        if self.layer == "bilinear":
            return bilinear(features, masks)
        return o2p(features, masks, **self.options)

    def forward(self, images, masks):
        return self.classifier(self.pool(self.backbone(images), masks))  # (B, R, classes)


def _accuracy(model: nn.Module, images, masks, labels) -> float:
    """The fraction of present regions classified right."""
    with torch.no_grad():
        logits = model(images, masks)
    present = masks.flatten(2).sum(-1) > 0
    correct = (logits.argmax(-1) == labels) & present
    return float(correct.sum() / present.sum())


def majority_accuracy(data: Mapping[str, torch.Tensor]) -> float:
    """The trivial answer's test accuracy: the training regions' most frequent class,
    predicted for every test region (ties: the lowest class)."""
    present = data["train_masks"].flatten(2).sum(-1) > 0
    counts = torch.bincount(data["train_labels"][present])
    test_present = data["test_masks"].flatten(2).sum(-1) > 0
    guess = int(counts.argmax())
    return float((data["test_labels"][test_present] == guess).double().mean())


def train_and_test(
    layer: str,
    method: str | None,
    options: Mapping[str, Any],
    data: Mapping[str, torch.Tensor],
    *,
    seed: int,
    epochs: int,
    batch: int,
    lr: float | Sequence[float],
    classes: int,
) -> dict[str, Any]:
    """One training run, tuned on the validation mosaics where there are some
    (:mod:`bench_cli.tasks.tuning`): accuracy on the test regions, seconds per epoch,
    divergence, and how the learning rate and epoch were chosen. ``predict: majority``
    trains nothing: the trivial answer, scored the same way."""
    head_options = dict(options)
    if head_options.pop("predict", "network") == "majority":
        return {"accuracy": majority_accuracy(data), "diverged": 0, "epoch_times": [],
                "loss": None, "tuned": None}  # fmt: skip
    if layer == "o2p":
        head_options["method"] = method
    dtype = data["train_images"].dtype
    images, masks, labels = data["train_images"], data["train_masks"], data["train_labels"]

    def build() -> nn.Module:
        return RegionClassifier(layer, head_options, classes).to(dtype)

    def train_epoch(model, optimizer, generator) -> float:
        order = torch.randperm(len(images), generator=generator)
        losses = []
        for first in range(0, len(order), batch):
            index = order[first : first + batch]
            logits = model(images[index], masks[index])
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels[index].flatten())
            if not torch.isfinite(loss):
                return float("nan")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return sum(losses) / len(losses)

    def validate(model) -> float:
        return _accuracy(model, data["val_images"], data["val_masks"], data["val_labels"])

    tuned = tune(build, train_epoch, validate if "val_images" in data else None,
                 lrs=lr, epochs=epochs, seed=seed)  # fmt: skip
    record = tuned.record()
    if tuned.model is None:
        return {"accuracy": None, "diverged": tuned.diverged, "epoch_times": tuned.epoch_times,
                "loss": float("nan"), "tuned": record}  # fmt: skip
    assert tuned.epoch is not None  # a chosen model has its epoch
    chosen_curve = next(c for c in tuned.curves if c["lr"] == tuned.lr)
    return {
        "accuracy": _accuracy(
            tuned.model, data["test_images"], data["test_masks"], data["test_labels"]
        ),
        "diverged": tuned.diverged,
        "epoch_times": tuned.epoch_times,
        "loss": chosen_curve["loss"][tuned.epoch - 1],
        "tuned": record,
    }
