"""Segmentation scores: each ranks a perfect, a trivial and a random segmentation in the
right order; matched accuracy is checked against brute force; the trivial predictions and
the collapse diagnostics do what they say."""

import itertools

import numpy as np
import pytest

from bench_cli.tasks import scoring


def voronoi(size=48, regions=4, seed=0):
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, size, (regions, 2))
    ys, xs = np.mgrid[0:size, 0:size]
    return ((ys[..., None] - points[:, 0]) ** 2 + (xs[..., None] - points[:, 1]) ** 2).argmin(-1)


def segmentations(seed=0):
    truth = voronoi(seed=seed)
    k = truth.max() + 1
    rng = np.random.default_rng(seed + 1)
    perfect = (truth + 1) % k  # the same segments under other labels
    random = rng.integers(0, k, truth.shape)
    trivial = np.zeros_like(truth)
    return truth, perfect, random, trivial


def better(name, a, b):
    return a > b if scoring.SCORES[name] else a < b


@pytest.mark.parametrize("name", sorted(scoring.SCORES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_score_ranks_perfect_trivial_and_random(name, seed):
    truth, perfect, random, trivial = segmentations(seed)
    s = {what: scoring.score(truth, seg)[name] for what, seg in
         (("perfect", perfect), ("random", random), ("trivial", trivial))}  # fmt: skip
    # A split part cannot tell a perfect segmentation from one segment (neither splits),
    # and a merge part cannot tell it from a random one that merges nothing: only the
    # other direction applies to those parts.
    if name not in ("rand_split", "voi_split"):
        assert better(name, s["perfect"], s["random"]), s
    assert not better(name, s["trivial"], s["perfect"]), s


def test_a_single_segment_cannot_win_matched_accuracy_but_wins_rand_error_and_voi():
    """Why matched accuracy is there: a segmentation with every region in place but shifted
    by 8 px (60 % of pixels right under the best matching) loses to one segment on adapted
    Rand error and on VOI, which reward under-segmentation, and wins on matched accuracy."""
    truth = voronoi(size=48, regions=4, seed=0)
    shifted = np.roll(truth, 8, axis=1)
    trivial = np.zeros_like(truth)
    shifted_s, trivial_s = scoring.score(truth, shifted), scoring.score(truth, trivial)
    assert shifted_s["matched_accuracy"] == pytest.approx(0.599, abs=1e-3)
    assert shifted_s["matched_accuracy"] > trivial_s["matched_accuracy"] + 0.2
    assert trivial_s["adapted_rand_error"] < shifted_s["adapted_rand_error"]
    assert trivial_s["voi"] < shifted_s["voi"] - 0.5
    largest = np.bincount(truth.ravel()).max() / truth.size
    assert trivial_s["matched_accuracy"] == pytest.approx(largest)
    # The trivial prediction never splits a region: its split parts are perfect.
    assert trivial_s["rand_split"] == 1.0
    assert trivial_s["voi_split"] == pytest.approx(0.0, abs=1e-12)


def test_matched_accuracy_is_the_best_one_to_one_map_by_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(20):
        truth = rng.integers(0, 4, 200)
        predicted = np.where(rng.random(200) < 0.6, (truth * 3 + 1) % 5, rng.integers(0, 5, 200))
        best = max(
            sum(np.sum((predicted == p) & (truth == t)) for t, p in enumerate(perm)) / 200
            for perm in itertools.permutations(range(5), 4)
        )
        assert scoring.matched_accuracy(truth, predicted) == pytest.approx(best)


def test_a_wrong_matching_is_caught():
    """Many-to-one (each predicted segment to its majority truth) would score a split
    segmentation perfectly; one-to-one does not."""
    truth = np.repeat([0, 1], 50)
    split = np.repeat([0, 1, 2, 3], 25)
    assert scoring.matched_accuracy(truth, split) == pytest.approx(0.5)


def test_every_true_region_counts_in_the_rand_error():
    """skimage's default ignore_labels=(0,) drops true segment 0: errors made only inside it
    would cost nothing. Here they cost."""
    from skimage.metrics import adapted_rand_error

    truth = np.repeat([0, 1, 2], 30)
    predicted = truth.copy()
    predicted[:15] = 3  # split region 0 only
    assert adapted_rand_error(truth, predicted)[0] == 0.0  # the default sees nothing
    assert scoring.score(truth, predicted)["adapted_rand_error"] > 0.05


def test_trivial_predictions():
    assert list(scoring.one_segment(5)) == [0] * 5
    labels = scoring.random_segments(1000, 4, np.random.default_rng(0))
    assert set(labels) == {0, 1, 2, 3}
    assert np.bincount(labels).min() > 200  # uniform: about 250 each


def test_collapse_diagnostics():
    labels = np.array([0, 0, 1, 1, 1])
    healthy = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9], [0, 1.2]])
    out = scoring.collapse(healthy, labels)
    assert out["zero_rows"] == 0.0
    assert out["cosine_within"] > 0.9 and out["cosine_across"] < 0.2
    collapsed = healthy.copy()
    collapsed[:4] = 0.0
    out = scoring.collapse(collapsed, labels)
    assert out["zero_rows"] == pytest.approx(0.8)


def test_the_task_metric_declares_every_score_and_diagnostic():
    from bench_cli.metrics import TASK_VALUES, path_problem
    from bench_cli.tasks import segments

    declared = set(TASK_VALUES.split("|"))
    assert set(scoring.SCORES) | set(segments.DIAGNOSTICS) | {"accuracy", "epoch_time_s"} == (
        declared
    )
    for name in declared:
        assert path_problem(f"task.{name}.mean") is None
    assert path_problem("task.not_a_score.mean") is not None


def test_segmentation_mosaics_have_as_many_classes_as_the_input_family_says():
    from bench_cli.data.textures import CLASSES
    from bench_cli.inputs import DISTINCT_CLASSES

    assert len(CLASSES) == DISTINCT_CLASSES
