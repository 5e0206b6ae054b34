"""Segmentation data: images, SLIC superpixels and ground-truth label maps."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def superpixels(image: np.ndarray, count: int) -> np.ndarray:
    """SLIC superpixels of a greyscale image, labelled 0..n-1."""
    from skimage.segmentation import slic

    labels = slic(image, n_segments=count, compactness=0.1, channel_axis=None, start_label=0)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.reshape(labels.shape)


def examples(
    images: int,
    size: int,
    regions: int,
    count: int,
    seed: int,
    data_root: str | None = None,
    split: str = "train",
) -> list[dict[str, torch.Tensor]]:
    """Per image: image (1, S, S), superpixel map (S, S), ground-truth segments (S, S).

    ``split`` picks BSDS's own folder (train, val or test) or, for mosaics, the part of
    each texture photograph that split crops from: the splits never share a pixel.
    Mosaics give every region its own class (``distinct``), so each ground-truth segment
    can be told from every other by its texture or orientation.
    """
    from skimage.transform import resize

    if data_root is not None:
        from bench_cli.data.bsds import load

        pictures: list[tuple[Any, ...]] = [
            (
                resize(grey, (size, size), anti_aliasing=True),
                resize(
                    truth, (size, size), order=0, preserve_range=True, anti_aliasing=False
                ).astype(np.int64),
            )
            for _, grey, truth in load(data_root, split=split, limit=images)
        ]
        pictures = [((g - g.mean()) / (g.std() + 1e-8), t) for g, t in pictures]
    else:
        from bench_cli.data.textures import mosaic

        rng = np.random.default_rng(seed)
        pictures = []
        for _ in range(images):
            image, region_map, classes, _ = mosaic(size, regions, rng, split, distinct=True)
            pictures.append((image, region_map, classes[region_map]))
    out = []
    for picture in pictures:
        image, truth = picture[0], picture[1]
        example = {
            "image": torch.tensor(image[None]),
            "superpixels": torch.tensor(superpixels(image, count)),
            "truth": torch.tensor(np.unique(truth, return_inverse=True)[1].reshape(truth.shape)),
        }
        if len(picture) == 3:  # mosaics also know each pixel's texture class
            example["classes"] = torch.tensor(picture[2])
        out.append(example)
    return out
