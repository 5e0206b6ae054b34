"""Region classification (DeepO2P): a small CNN, a pooling head per region, a classifier.

Heads: ``avg_pool`` and ``bilinear`` (the unstructured counterparts) or ``o2p``
with any func and method; ``hidden`` > 0 inserts a hidden fully connected
layer (the paper's DeepO2P-FC). The backbone, head and classifier train end to
end, so the O2P backward is exercised by every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bench_cli.layers import avg_pool, bilinear, o2p


class Backbone(nn.Module):
    def __init__(self, channels: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
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


def train_and_test(
    layer: str,
    method: str | None,
    options: Mapping[str, Any],
    data: Mapping[str, torch.Tensor],
    *,
    seed: int,
    epochs: int,
    batch: int,
    lr: float,
    classes: int,
) -> dict[str, Any]:
    """One training run; accuracy on the test regions, seconds per epoch, divergence."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    head_options = dict(options)
    if layer == "o2p":
        head_options["method"] = method
    model = RegionClassifier(layer, head_options, classes).to(data["train_images"].dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images, masks, labels = data["train_images"], data["train_masks"], data["train_labels"]
    epoch_times: list[float] = []
    losses: list[float] = []
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        start = time.perf_counter()
        for first in range(0, len(order), batch):
            index = order[first : first + batch]
            logits = model(images[index], masks[index])
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels[index].flatten())
            if not torch.isfinite(loss):
                return {
                    "accuracy": None,
                    "diverged": True,
                    "epoch_times": epoch_times,
                    "loss": float("nan"),
                }
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        epoch_times.append(time.perf_counter() - start)
    with torch.no_grad():
        logits = model(data["test_images"], data["test_masks"])
    present = data["test_masks"].flatten(2).sum(-1) > 0
    correct = (logits.argmax(-1) == data["test_labels"]) & present
    accuracy = float(correct.sum() / present.sum())
    return {
        "accuracy": accuracy,
        "diverged": not math.isfinite(losses[-1]),
        "epoch_times": epoch_times,
        "loss": losses[-1],
    }
