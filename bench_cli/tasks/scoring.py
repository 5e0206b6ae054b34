"""Segmentation scores that a trivial prediction cannot game, and the trivial predictions.

Adapted Rand error and variation of information both reward under-segmentation:
a prediction of one segment per image never splits a true region, so it pays
only for merging, and on mosaics of four regions that cost is smaller than
what a real method pays for both kinds of mistake. So every score here is
reported with its two parts, and beside them is one score a single segment
cannot win:

- ``matched_accuracy``: the fraction of pixels whose predicted segment maps to
  their true segment under the best one-to-one assignment of predicted to true
  segments (the Hungarian algorithm on the contingency table). Predicting one
  segment scores the largest true region's share, as a constant classifier does.
- ``adapted_rand_error``: scikit-image's, counting *every* ground-truth region
  (``ignore_labels=()``: its default drops label 0, a real region here), with
  ``rand_split`` (pairs in one true region kept together / such pairs; 1: no
  splits) and ``rand_merge`` (pairs kept together that belong together / pairs
  kept together; 1: no merges).
- ``voi``: variation of information H(pred|truth) + H(truth|pred), reported as
  ``voi_split`` = H(pred|truth) (over-segmentation) and ``voi_merge`` =
  H(truth|pred) (under-segmentation).

The trivial predictions, scored like any method: :func:`one_segment` and
:func:`random_segments` (each superpixel uniformly into k segments).
"""

from __future__ import annotations

import math

import numpy as np

# Name -> whether higher is better, for every score :func:`score` returns.
SCORES = {
    "matched_accuracy": True,
    "adapted_rand_error": False,
    "rand_split": True,
    "rand_merge": True,
    "voi": False,
    "voi_split": False,
    "voi_merge": False,
}


def contingency(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Pixel counts n[i, j] of true segment i and predicted segment j (labels 0..n-1)."""
    truth, predicted = np.asarray(truth).ravel(), np.asarray(predicted).ravel()
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and prediction {predicted.shape} differ in size")
    _, t = np.unique(truth, return_inverse=True)
    _, p = np.unique(predicted, return_inverse=True)
    table = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
    np.add.at(table, (t, p), 1)
    return table


def matched_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Pixel accuracy under the best one-to-one map of predicted onto true segments."""
    from scipy.optimize import linear_sum_assignment

    table = contingency(truth, predicted)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def score(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Every score of :data:`SCORES` for one image (label maps of the same shape)."""
    from skimage.metrics import adapted_rand_error, variation_of_information

    truth, predicted = np.asarray(truth), np.asarray(predicted)
    error, split, merge = adapted_rand_error(truth, predicted, ignore_labels=())
    # 0/0 when no two pixels share a predicted segment: nothing was merged.
    merge = 1.0 if not math.isfinite(merge) else float(merge)
    over, under = variation_of_information(truth, predicted)  # H(pred|truth), H(truth|pred)
    return {
        "matched_accuracy": matched_accuracy(truth, predicted),
        "adapted_rand_error": float(error),
        "rand_split": float(split),
        "rand_merge": merge,
        "voi": float(over + under),
        "voi_split": float(over),
        "voi_merge": float(under),
    }


def one_segment(superpixels: int) -> np.ndarray:
    """The trivial prediction: every superpixel in segment 0."""
    return np.zeros(superpixels, dtype=np.int64)


def random_segments(superpixels: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Each superpixel uniformly into one of k segments."""
    return rng.integers(0, k, superpixels)


def collapse(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Whether pooled features collapsed: the fraction of zero rows, and the mean cosine
    similarity of superpixel pairs within one true segment and across segments (NaN
    where a row is zero). Collapsed features have many zero rows and cosines near 0."""
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1)
    zero = norms <= 1e-12 * max(float(norms.max(initial=0.0)), 1e-300)
    unit = features[~zero] / norms[~zero, None]
    kept = np.asarray(labels)[~zero]
    cosine = unit @ unit.T
    same = kept[:, None] == kept[None, :]
    off_diagonal = ~np.eye(len(kept), dtype=bool)
    within, across = cosine[same & off_diagonal], cosine[~same]
    return {
        "zero_rows": float(zero.mean()) if len(zero) else math.nan,
        "cosine_within": float(within.mean()) if within.size else math.nan,
        "cosine_across": float(across.mean()) if across.size else math.nan,
    }
