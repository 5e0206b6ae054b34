"""Texture mosaics and the region-classification task."""

import numpy as np
import pytest
import torch

from bench_cli import runner, spec
from bench_cli.data.textures import CLASSES, mosaic, region_dataset

QUICK = """\
name: task-test
dtype: float32
inputs: {kind: mosaic, train: 6, test: 4, size: 32, regions: 4}
methods:
  avg: {layer: avg_pool}
  o2p: {layer: o2p, func: log, method: eig_dk}
metrics:
  - task: {seeds: 2, epochs: 2}
"""


def test_mosaics_are_seeded_and_standardised_per_region():
    a = region_dataset(3, 32, 4, seed=7)
    b = region_dataset(3, 32, 4, seed=7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["images"], region_dataset(3, 32, 4, seed=8)["images"])
    image, region_map, classes = mosaic(48, 5, np.random.default_rng(0))
    for r in range(5):
        pixels = image[region_map == r]
        if pixels.size > 1:  # first-order statistics say nothing about the class
            assert abs(pixels.mean()) < 1e-9 and abs(pixels.std() - 1) < 1e-6
    assert set(classes) <= set(range(len(CLASSES))) and len(CLASSES) == 6


def test_training_is_deterministic_for_a_seed_and_other_layers_are_skipped():
    suite = spec.loads(QUICK)
    results = []
    for _ in range(2):
        results.append(
            {
                c.config.label: runner.run_case(c, suite, ["task"], timeout=120)[0]
                for c in suite.cases()
            }
        )
    for label in ("avg", "o2p"):
        first, second = results[0][label], results[1][label]
        assert first["status"] == "ok", first["reason"]
        # The same accuracy, and the same losses, to the last digit.
        assert first["value"]["accuracy"] == second["value"]["accuracy"]
        assert first["value"]["final_loss"] == second["value"]["final_loss"]
        assert first["value"]["runs"] == 2 and first["value"]["diverged"] == 0
        assert all(0.0 <= a <= 1.0 for a in first["value"]["accuracy"]["samples"])
    features = spec.loads(
        QUICK.replace(
            "{kind: mosaic, train: 6, test: 4, size: 32, regions: 4}",
            "{kind: features, samples: 8, channels: 3}",
        )
    )
    (case,) = [c for c in features.cases() if c.config.label == "o2p"]
    (record,) = runner.run_case(case, features, ["task"], timeout=60)
    assert record["status"] == "skipped" and "mosaics" in record["reason"]


def test_o2p_heads_differentiate_through_region_masks():
    from bench_cli.tasks.regions import RegionClassifier

    data = region_dataset(2, 16, 3, seed=1)
    model = RegionClassifier("o2p", {"func": "log", "method": "eig_dk", "hidden": 8}, 6).double()
    logits = model(data["images"], data["masks"])
    assert logits.shape == (2, 3, 6)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("layer", ["avg_pool", "bilinear"])
def test_unstructured_heads_have_their_own_widths(layer):
    from bench_cli.tasks.regions import RegionClassifier, pooled_size

    model = RegionClassifier(layer, {}, 6)
    assert model.classifier[-1].in_features == pooled_size(layer, 8)
