"""BSDS300/500 loader for users who have the dataset on disk (no download).

Layout (BSDS500): ``<root>/images/<split>/<id>.jpg`` and
``<root>/groundTruth/<split>/<id>.mat``, each .mat holding a cell array
``groundTruth`` of structs with a ``Segmentation`` label image, one per human
annotator. Every problem names the file it is about.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench_cli.errors import UserError


def segmentations(mat_file: Path) -> list[np.ndarray]:
    """The human segmentations in one ground-truth .mat file."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        data = loadmat(mat_file)
        cells = data["groundTruth"].ravel()
        return [np.asarray(cell["Segmentation"][0, 0], dtype=np.int64) for cell in cells]
    except (OSError, ValueError, KeyError, IndexError, TypeError, MatReadError) as exc:
        raise UserError(f"{mat_file}: not a BSDS ground-truth file ({exc})") from exc


BSDS_SPLITS = ("train", "val", "test")


def load(root: str | Path, split: str, limit: int | None = None):
    """[(image id, greyscale image in [0, 1], first human segmentation)], sorted by id.

    ``split`` is one of BSDS's own folders, so training never reads a test image.
    """
    if split not in BSDS_SPLITS:
        raise UserError(f"unknown BSDS split '{split}'; known: {', '.join(BSDS_SPLITS)}")
    from skimage import color, io

    root = Path(root)
    images = root / "images" / split
    truths = root / "groundTruth" / split
    for folder in (images, truths):
        if not folder.is_dir():
            raise UserError(
                f"{folder}: BSDS folder not found (expected images/ and groundTruth/ under {root})"
            )
    out = []
    for image_file in sorted(images.glob("*.jpg"))[:limit]:
        mat_file = truths / f"{image_file.stem}.mat"
        if not mat_file.exists():
            raise UserError(f"{mat_file}: ground truth missing for {image_file.name}")
        try:
            image = io.imread(image_file)
        except (OSError, ValueError) as exc:
            raise UserError(f"{image_file}: cannot read image ({exc})") from exc
        grey = color.rgb2gray(image) if image.ndim == 3 else image / 255.0
        out.append(
            (image_file.stem, np.asarray(grey, dtype=np.float64), segmentations(mat_file)[0])
        )
    if not out:
        raise UserError(f"{images}: no .jpg images")
    return out
