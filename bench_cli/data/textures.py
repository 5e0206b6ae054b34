"""Texture classes from scikit-image's bundled photographs, and Voronoi mosaics of them.

Classes are (texture, orientation): brick, grass, gravel and the lunar surface
of ``skimage.data.moon``, each at 0° and 90°.
Every region of a mosaic is standardised to zero mean and unit variance, so
first-order statistics (mean intensity, contrast) cannot tell the classes
apart; the orientation survives only in second-order structure, which is what
covariance pooling captures. Everything is a function of the seed.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

TEXTURES = ("brick", "grass", "gravel", "moon")  # moon: the lunar-surface photograph
ORIENTATIONS = (0, 90)
CLASSES = tuple(f"{t}-{o}" for t in TEXTURES for o in ORIENTATIONS)


@functools.cache
def texture_bank() -> tuple[np.ndarray, ...]:
    """One float64 image per class, standardised globally (regions are standardised again)."""
    import skimage.data

    bank = []
    for name in TEXTURES:
        image = getattr(skimage.data, name)().astype(np.float64)
        image = (image - image.mean()) / image.std()
        for angle in ORIENTATIONS:
            bank.append(np.ascontiguousarray(np.rot90(image, k=angle // 90)))
    return tuple(bank)


def voronoi_labels(size: int, regions: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) map of the nearest of ``regions`` random seed points."""
    seeds = rng.uniform(0, size, (regions, 2))
    ys, xs = np.mgrid[0:size, 0:size]
    distance = (ys[..., None] - seeds[:, 0]) ** 2 + (xs[..., None] - seeds[:, 1]) ** 2
    return distance.argmin(-1)


def mosaic(size: int, regions: int, rng: np.random.Generator):
    """An image tiled into Voronoi regions, each a crop of one class, standardised per region.

    Returns (image (size, size), region map (size, size), class of each region (regions,)).
    """
    bank = texture_bank()
    region_map = voronoi_labels(size, regions, rng)
    classes = rng.integers(0, len(CLASSES), regions)
    image = np.zeros((size, size))
    for r in range(regions):
        inside = region_map == r
        if not inside.any():
            continue
        source = bank[classes[r]]
        y, x = rng.integers(0, source.shape[0] - size), rng.integers(0, source.shape[1] - size)
        patch = source[y : y + size, x : x + size][inside]
        image[inside] = (patch - patch.mean()) / (patch.std() + 1e-8)
    return image, region_map, classes


def region_dataset(images: int, size: int, regions: int, seed: int) -> dict[str, torch.Tensor]:
    """Mosaics with one mask per region: images (N, 1, S, S), masks (N, R, S, S), labels (N, R)."""
    rng = np.random.default_rng(seed)
    pictures, masks, labels = [], [], []
    for _ in range(images):
        image, region_map, classes = mosaic(size, regions, rng)
        pictures.append(image[None])
        masks.append(np.stack([region_map == r for r in range(regions)]).astype(np.float64))
        labels.append(classes)
    return {
        "images": torch.tensor(np.stack(pictures)),
        "masks": torch.tensor(np.stack(masks)),
        "labels": torch.tensor(np.stack(labels), dtype=torch.long),
    }
