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
from dataclasses import dataclass

import numpy as np
import torch

TEXTURES = ("brick", "grass", "gravel", "moon")  # moon: the lunar-surface photograph
ORIENTATIONS = (0, 90)
CLASSES = tuple(f"{t}-{o}" for t in TEXTURES for o in ORIENTATIONS)


SPLITS = ("train", "val", "test")
# Where each split crops from, as a fraction of the photograph's rows (its own
# coordinates): the top half trains, carved into train and a validation strip for tuning,
# and the bottom half tests. A 512-row photograph gives 192, 64 and 256 rows.
SPLIT_ROWS = {"train": (0.0, 0.375), "val": (0.375, 0.5), "test": (0.5, 1.0)}


@dataclass(frozen=True)
class Texture:
    """One class's image and, per pixel, where it came from in the unrotated photograph."""

    image: np.ndarray  # standardised globally (regions are standardised again)
    origin: np.ndarray  # linear pixel index in the photograph, rotated along with the image
    photo_rows: int

    def window(self, split: str) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the part of this image ``split`` may crop from.

        Each photograph is cut along its own rows (:data:`SPLIT_ROWS`): the top half
        for training and validation, the bottom half for testing. Both orientations of a
        texture come from one photograph, so the cut is made in the photograph's
        coordinates (through ``origin``) and the splits stay disjoint across
        orientations too.
        """
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
        return self._windows[split]

    @functools.cached_property
    def _windows(self) -> dict[str, tuple[int, int, int, int]]:
        photo_row = self.origin // (self.origin.size // self.photo_rows)
        out = {}
        for split, (top, bottom) in SPLIT_ROWS.items():
            inside = (photo_row >= round(top * self.photo_rows)) & (
                photo_row < round(bottom * self.photo_rows)
            )
            rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
            out[split] = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        return out


@functools.cache
def texture_bank() -> tuple[Texture, ...]:
    """One texture per class, in CLASSES order."""
    import skimage.data

    bank = []
    for name in TEXTURES:
        image = getattr(skimage.data, name)().astype(np.float64)
        image = (image - image.mean()) / image.std()
        origin = np.arange(image.size).reshape(image.shape)
        for angle in ORIENTATIONS:
            turns = angle // 90
            bank.append(
                Texture(
                    np.ascontiguousarray(np.rot90(image, k=turns)),
                    np.ascontiguousarray(np.rot90(origin, k=turns)),
                    image.shape[0],
                )
            )
    return tuple(bank)


def voronoi_labels(size: int, regions: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) map of the nearest of ``regions`` random seed points."""
    seeds = rng.uniform(0, size, (regions, 2))
    ys, xs = np.mgrid[0:size, 0:size]
    distance = (ys[..., None] - seeds[:, 0]) ** 2 + (xs[..., None] - seeds[:, 1]) ** 2
    return distance.argmin(-1)


def mosaic(
    size: int,
    regions: int,
    rng: np.random.Generator,
    split: str = "train",
    distinct: bool = False,
):
    """An image tiled into Voronoi regions, each a crop of one class, standardised per region.

    Crops come from the ``split``'s part of each photograph (:meth:`Texture.window`).
    With ``distinct`` no two regions share a class, so every pair of regions differs in
    texture or orientation and a segmentation can separate them (at most len(CLASSES)
    regions); otherwise classes are drawn independently, as region labels are.
    Returns (image (size, size), region map (size, size), class of each region (regions,),
    source (size, size): the photograph pixel each pixel came from, as
    class_texture_index * 2**32 + linear index, -1 where no region covers it).
    """
    bank = texture_bank()
    region_map = voronoi_labels(size, regions, rng)
    if distinct:
        if regions > len(CLASSES):
            raise ValueError(f"{regions} regions of distinct classes: only {len(CLASSES)} exist")
        classes = rng.choice(len(CLASSES), regions, replace=False)
    else:
        classes = rng.integers(0, len(CLASSES), regions)
    image = np.zeros((size, size))
    source = np.full((size, size), -1, dtype=np.int64)
    for r in range(regions):
        inside = region_map == r
        if not inside.any():
            continue
        texture = bank[classes[r]]
        top, bottom, left, right = texture.window(split)
        if bottom - top < size or right - left < size:
            raise ValueError(
                f"mosaics of {size} px do not fit in the {split} part of a texture photograph"
            )
        y = int(rng.integers(top, bottom - size + 1))
        x = int(rng.integers(left, right - size + 1))
        patch = texture.image[y : y + size, x : x + size][inside]
        image[inside] = (patch - patch.mean()) / (patch.std() + 1e-8)
        photo = classes[r] // len(ORIENTATIONS)  # both orientations share one photograph
        source[inside] = photo * 2**32 + texture.origin[y : y + size, x : x + size][inside]
    return image, region_map, classes, source


def region_dataset(
    images: int, size: int, regions: int, seed: int, split: str = "train"
) -> dict[str, torch.Tensor]:
    """Mosaics with one mask per region: images (N, 1, S, S), masks (N, R, S, S), labels (N, R).

    ``source`` (N, S, S) traces each pixel to its photograph pixel (see :func:`mosaic`).
    """
    rng = np.random.default_rng(seed)
    pictures, masks, labels, sources = [], [], [], []
    for _ in range(images):
        image, region_map, classes, source = mosaic(size, regions, rng, split)
        pictures.append(image[None])
        masks.append(np.stack([region_map == r for r in range(regions)]).astype(np.float64))
        labels.append(classes)
        sources.append(source)
    return {
        "images": torch.tensor(np.stack(pictures)),
        "masks": torch.tensor(np.stack(masks)),
        "labels": torch.tensor(np.stack(labels), dtype=torch.long),
        "source": torch.tensor(np.stack(sources)),
    }
