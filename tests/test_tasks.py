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
    image, region_map, classes, _ = mosaic(48, 5, np.random.default_rng(0))
    for r in range(5):
        pixels = image[region_map == r]
        if pixels.size > 1:  # first-order statistics say nothing about the class
            assert abs(pixels.mean()) < 1e-9 and abs(pixels.std() - 1) < 1e-6
    assert set(classes) <= set(range(len(CLASSES))) and len(CLASSES) == 8


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
    model = RegionClassifier("o2p", {"func": "log", "method": "eig_dk", "hidden": 8}, 8).double()
    logits = model(data["images"], data["masks"])
    assert logits.shape == (2, 3, 8)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("layer", ["avg_pool", "bilinear"])
def test_unstructured_heads_have_their_own_widths(layer):
    from bench_cli.tasks.regions import RegionClassifier, pooled_size

    model = RegionClassifier(layer, {}, 6)
    assert model.classifier[-1].in_features == pooled_size(layer, 8)


def _bsds_fixture(root, count=2, size=24):
    """A tiny BSDS500-shaped folder: images/<split>/*.jpg and groundTruth/<split>/*.mat."""
    from scipy.io import savemat
    from skimage import io

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "groundTruth" / split).mkdir(parents=True)
        for i in range(count):
            image = (rng.uniform(0, 255, (size, size, 3))).astype(np.uint8)
            io.imsave(root / "images" / split / f"{i}.jpg", image, check_contrast=False)
            truth = np.zeros((size, size), dtype=np.uint16)
            truth[:, size // 2 :] = 1
            cells = np.empty((1, 2), dtype=object)
            for a in range(2):  # two annotators, as BSDS stores them
                cells[0, a] = {"Segmentation": truth + a, "Boundaries": truth * 0}
            savemat(root / "groundTruth" / split / f"{i}.mat", {"groundTruth": cells})


def test_bsds_loader_reads_images_and_human_segmentations(tmp_path):
    from bench_cli.data import bsds
    from bench_cli.errors import UserError

    _bsds_fixture(tmp_path)
    items = bsds.load(tmp_path, "test")
    assert [item[0] for item in items] == ["0", "1"]
    _, grey, truth = items[0]
    assert grey.shape == (24, 24) and grey.min() >= 0 and grey.max() <= 1
    assert set(np.unique(truth)) == {0, 1}
    (tmp_path / "groundTruth" / "test" / "1.mat").write_text("not a mat file")
    with pytest.raises(UserError, match=r"1\.mat: not a BSDS ground-truth file"):
        bsds.load(tmp_path, "test")
    with pytest.raises(UserError, match="BSDS folder not found"):
        bsds.load(tmp_path / "nowhere", "test")


def test_segmentation_suite_runs_on_bsds_when_given_a_path(cli, write_suite, tmp_path):
    _bsds_fixture(tmp_path / "bsds")
    text = (
        "name: seg\ndtype: float32\n"
        "inputs: {kind: segmentation, train: 2, test: 2, size: 24, superpixels: 20, "
        f"data_root: {tmp_path / 'bsds'}}}\n"
        "methods:\n  nc: {layer: ncut, method: eig, k: 2, affinity: cosine}\n"
        "  raw: {layer: ncut, method: eig, k: 2, sigma: 1.0, mode: raw}\n"
        "metrics:\n  - task: {seeds: 1, epochs: 1}\n"
    )
    result = cli("run", write_suite(text), "--out", "run")
    assert result.exit_code == 0, result.output
    assert "2 records: 2 ok" in result.stderr
    missing = text.replace(str(tmp_path / "bsds"), str(tmp_path / "missing"))
    from tests.test_bad_input import _check_one_line

    _check_one_line(
        cli("validate", write_suite(missing, name="m.yaml")), ["data_root", "folder not found"]
    )


def test_segmentation_task_is_deterministic_and_scores_are_sane():
    text = (
        "name: seg\ndtype: float32\n"
        "inputs: {kind: segmentation, train: 2, test: 2, size: 32, superpixels: 30}\n"
        "methods:\n  nc: {layer: ncut, method: eig, k: 4, affinity: cosine}\n"
        "metrics:\n  - task: {seeds: 1, epochs: 1}\n"
    )
    suite = spec.loads(text)
    (case,) = suite.cases()
    first, second = (runner.run_case(case, suite, ["task"], timeout=120)[0] for _ in range(2))
    assert first["status"] == "ok", first["reason"]
    assert first["value"] == second["value"] | {"epoch_time_s": first["value"]["epoch_time_s"]}
    error = first["value"]["adapted_rand_error"]["samples"][0]
    assert 0.0 <= error <= 1.0 and first["value"]["voi"]["samples"][0] >= 0.0


def test_mosaic_test_regions_share_no_pixel_with_training():
    # The same seed for both splits, so any overlap could only come from the windows.
    train = region_dataset(40, 48, 5, seed=3, split="train")["source"]
    test = region_dataset(40, 48, 5, seed=3, split="test")["source"]
    train_pixels = set(train[train >= 0].tolist())
    test_pixels = set(test[test >= 0].tolist())
    assert train_pixels and test_pixels and not train_pixels & test_pixels
    # Sanity: two training sets do overlap, so the check can see an overlap.
    other = region_dataset(40, 48, 5, seed=4, split="train")["source"]
    assert train_pixels & set(other[other >= 0].tolist())


def test_bsds_splits_read_their_own_folders(tmp_path, monkeypatch):
    from bench_cli import inputs
    from bench_cli.data import bsds

    _bsds_fixture(tmp_path)
    calls = []
    real = bsds.load

    def spy(root, split, limit=None):
        calls.append(split)
        return real(root, split, limit)

    monkeypatch.setattr(bsds, "load", spy)
    params = inputs.SegmentationParams(
        train=2, test=1, size=24, superpixels=10, data_root=str(tmp_path)
    )
    data = inputs.generate_segmentation(params, torch.Generator().manual_seed(0))
    assert calls == ["train", "test"]
    assert data["train_images"].shape[0] == 2 and data["test_images"].shape[0] == 1
    from bench_cli.errors import UserError

    with pytest.raises(UserError, match="unknown BSDS split 'testing'"):
        bsds.load(tmp_path, "testing")


def test_train_val_and_test_crops_share_no_pixel():
    """The validation strip is carved from the training half, and touches neither split."""
    sources = {
        split: region_dataset(40, 48, 5, seed=3, split=split)["source"]
        for split in ("train", "val", "test")
    }
    pixels = {split: set(s[s >= 0].tolist()) for split, s in sources.items()}
    assert all(pixels.values())
    assert not pixels["train"] & pixels["val"]
    assert not pixels["val"] & pixels["test"]
    assert not pixels["train"] & pixels["test"]


def test_segmentation_mosaics_give_every_region_its_own_class():
    from bench_cli.data.segmentation import examples

    for split in ("train", "val", "test"):
        for item in examples(30, 48, 4, 30, seed=1, split=split):
            truth, classes = item["truth"], item["classes"]
            per_segment = {int(classes[truth == s][0]) for s in truth.unique()}
            assert len(per_segment) == len(truth.unique())  # separable: distinct classes
    image, region_map, classes, _ = mosaic(48, 8, np.random.default_rng(0), distinct=True)
    assert len(set(classes.tolist())) == 8
    with pytest.raises(ValueError, match="only 8 exist"):
        mosaic(48, 9, np.random.default_rng(0), distinct=True)


def test_the_segmentation_backbone_ends_linear():
    from bench_cli.tasks.regions import Backbone

    torch.manual_seed(0)
    features = Backbone(final_relu=False)(torch.randn(1, 1, 16, 16))
    assert bool((features < 0).any())  # a final ReLU would clip these to zero
    assert bool((Backbone()(torch.randn(1, 1, 16, 16)) >= 0).all())


def _segmentation_data(val=2):
    from bench_cli import inputs

    params = inputs.SegmentationParams(train=3, val=val, test=3, size=32, superpixels=30)
    return inputs.generate_segmentation(params, torch.Generator().manual_seed(0))


OPTIONS = {"k": 4, "affinity": "cosine", "sigma": 1.0, "mode": "trained",
           "loss": "projector", "route": "spectral"}  # fmt: skip


def test_one_segment_scores_the_largest_regions_share_and_trains_nothing():
    from bench_cli.tasks import segments

    data = _segmentation_data()
    result = segments.run("eig", {**OPTIONS, "mode": "one_segment"}, data, seed=0, epochs=3,
                          lr=[0.003, 0.01])  # fmt: skip
    shares = [np.bincount(t.ravel().numpy()).max() / t.numel() for t in data["test_truth"]]
    assert result["matched_accuracy"] == pytest.approx(float(np.mean(shares)))
    assert result["largest_segment"] == 1.0 and result["rand_split"] == 1.0
    assert result["tuned"] is None and result["epoch_times"] == []
    assert result["zero_rows"] is None  # no features to diagnose


def test_trained_segmentation_records_its_tuning_and_diagnostics():
    from bench_cli.tasks import segments

    data = _segmentation_data()
    result = segments.run("eig", OPTIONS, data, seed=0, epochs=2, lr=[0.003, 0.01])
    tuned = result["tuned"]
    assert tuned["lr"] in (0.003, 0.01) and tuned["epoch"] in (1, 2)
    assert [c["lr"] for c in tuned["curves"]] == [0.003, 0.01]
    assert all(len(c["loss"]) == 2 and len(c["validation"]) == 2 for c in tuned["curves"])
    best = max(v for c in tuned["curves"] for v in c["validation"])
    assert tuned["validation"] == pytest.approx(best, abs=1e-6)
    assert 0.0 <= result["zero_rows"] <= 1.0 and -1.0 <= result["cosine_within"] <= 1.0
    # No validation images: tuning over two learning rates has nothing to choose on.
    with pytest.raises(ValueError, match="no validation split"):
        segments.run("eig", OPTIONS, _segmentation_data(val=0), seed=0, epochs=1,
                     lr=[0.003, 0.01])  # fmt: skip


def test_majority_answers_the_most_frequent_training_class():
    from bench_cli.tasks.regions import majority_accuracy, train_and_test

    data = {f"{split}_{k}": v for split, count, seed in (("train", 12, 1), ("test", 6, 2))
            for k, v in region_dataset(count, 16, 3, seed=seed, split=split).items()}  # fmt: skip
    present = data["train_masks"].flatten(2).sum(-1) > 0
    labels = data["train_labels"][present].tolist()
    guess = max(sorted(set(labels)), key=labels.count)
    test_present = data["test_masks"].flatten(2).sum(-1) > 0
    expected = float(np.mean([label == guess for label in
                              data["test_labels"][test_present].tolist()]))  # fmt: skip
    assert majority_accuracy(data) == pytest.approx(expected)
    run = train_and_test("avg_pool", "direct", {"predict": "majority"}, data, seed=0, epochs=1,
                         batch=4, lr=0.003, classes=8)  # fmt: skip
    assert run["accuracy"] == pytest.approx(expected) and run["tuned"] is None
