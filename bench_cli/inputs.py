"""Input families: seeded generators of test inputs with controlled properties.

Each family is a parameter model (the keys a suite's ``inputs:`` block may
use) and a generator that returns float64 CPU tensors. The runner casts and
moves them to the case's dtype and device, so every dtype and device of a
case family starts from the same float64 draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)


class FamilyParams(BaseModel):
    """Parameters every input family takes (data_seed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    data_seed: int = Field(
        0,
        ge=0,
        description="which draw of the family: a grid axis of independent data sets, "
        "each the same for every method",
    )


@dataclass(frozen=True)
class InputFamily:
    """An input family: its parameters model and its generator."""

    name: str
    params: type[FamilyParams]
    # (its own params model, generator) -> tensors
    generate: Callable[[Any, torch.Generator], dict[str, torch.Tensor]]
    summary: str


def haar_orthogonal(batch: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Orthogonal matrices drawn from the Haar measure (QR of a Gaussian, signs fixed)."""
    gaussian = torch.randn(batch, dim, dim, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(gaussian)
    # Without the sign fix QR's output is not Haar-distributed (Mezzadri 2007).
    return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)


class SpdParams(FamilyParams):
    """Symmetric positive definite matrices with a controlled spectrum."""

    batch: PositiveInt = 8
    dim: PositiveInt
    condition: float = Field(100.0, ge=1.0, description="λmax / λmin")
    spectrum: Literal["geometric", "linear"] = "geometric"
    gap: float | None = Field(
        None, gt=0.0, lt=1.0, description="relative gap (λ₁ − λ₂)/λ₁ of the two largest"
    )
    multiplicity: PositiveInt = Field(1, description="copies of the largest eigenvalue")

    @model_validator(mode="after")
    def _fits(self):
        if self.multiplicity > self.dim:
            raise ValueError(f"multiplicity {self.multiplicity} exceeds dim {self.dim}")
        if self.gap is not None and self.multiplicity > 1:
            raise ValueError("give gap or multiplicity, not both")
        return self


def spd_eigvals(params: SpdParams) -> torch.Tensor:
    """Eigenvalues from 1 down to 1/condition, descending, then the gap or the repeats."""
    t = torch.linspace(0.0, 1.0, params.dim, dtype=torch.float64)
    if params.spectrum == "geometric":
        eigvals = torch.exp(-t * math.log(params.condition))
    else:
        eigvals = 1.0 - t * (1.0 - 1.0 / params.condition)
    if params.gap is not None and params.dim > 1:
        eigvals[1] = eigvals[0] * (1.0 - params.gap)
    eigvals[: params.multiplicity] = eigvals[0]
    return eigvals


def generate_spd(params: SpdParams, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Haar-random eigenvectors with the chosen eigenvalues."""
    eigvecs = haar_orthogonal(params.batch, params.dim, generator)
    eigvals = spd_eigvals(params)
    A = (eigvecs * eigvals) @ eigvecs.mT
    return {"A": 0.5 * (A + A.mT)}


class FeatureParams(FamilyParams):
    """Features X (B, N, C) with a chosen population covariance."""

    batch: PositiveInt = 8
    samples: PositiveInt = Field(description="N, feature vectors per item")
    channels: PositiveInt = Field(description="C, the feature dimension")
    condition: float = Field(10.0, ge=1.0, description="of the population covariance")


def generate_features(params: FeatureParams, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """X (B, N, C): Gaussian samples whose population covariance has the given condition."""
    spd = SpdParams(batch=params.batch, dim=params.channels, condition=params.condition)
    scales = spd_eigvals(spd).sqrt()
    axes = haar_orthogonal(params.batch, params.channels, generator)
    gaussian = torch.randn(
        params.batch, params.samples, params.channels, generator=generator, dtype=torch.float64
    )
    return {"X": (gaussian * scales) @ axes.mT}


class CovarianceParams(FamilyParams):
    """Sample covariances of N Gaussian samples."""

    batch: PositiveInt = 8
    samples: PositiveInt = Field(description="N; N <= channels gives a rank-deficient covariance")
    channels: PositiveInt = Field(description="C, the matrix size")
    condition: float = Field(10.0, ge=1.0, description="of the population covariance")
    eps: PositiveFloat = Field(1e-3, description="the regularizer εI")


def generate_covariance(
    params: CovarianceParams, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A = XcᵀXc/N + εI from centred Gaussian features: rank min(N − 1, C) before εI."""
    features = FeatureParams(
        batch=params.batch,
        samples=params.samples,
        channels=params.channels,
        condition=params.condition,
    )
    X = generate_features(features, generator)["X"]
    X = X - X.mean(-2, keepdim=True)
    A = X.mT @ X / params.samples + params.eps * torch.eye(params.channels, dtype=torch.float64)
    return {"A": 0.5 * (A + A.mT)}


class RatioParams(FamilyParams):
    """An eigenvalue pair with ratio x, for the gap series."""

    x: float = Field(gt=0.0, lt=1.0, description="the eigenvalue ratio λ₂/λ₁")


def generate_ratio(params: RatioParams, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The eigenvalue pair (x, 1): the gap term 1/(λ₁ − λ₂) is then 1/(1 − x)."""
    return {"eigvals": torch.tensor([[params.x, 1.0]], dtype=torch.float64)}


class MosaicParams(FamilyParams):
    """Texture mosaics with region labels (the DeepO2P task)."""

    train: PositiveInt = Field(48, description="training mosaics")
    val: NonNegativeInt = Field(
        0,
        description="validation mosaics, cropped from the training half of each photograph "
        "but never from its training part; the task metric tunes on them",
    )
    test: PositiveInt = Field(24, description="test mosaics")
    size: PositiveInt = Field(48, description="pixels per side")
    regions: PositiveInt = Field(5, description="Voronoi regions per mosaic")


def _splits(params) -> list[tuple[str, int, int]]:
    """(split, count, seed offset) of each split a family generates; val only when asked,
    with its own offset, so train and test stay what they were without it."""
    out = [("train", params.train, 0), ("test", params.test, 1)]
    return out + ([("val", params.val, 2)] if params.val else [])


def generate_mosaics(params: MosaicParams, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Texture mosaics with region masks and labels (bench_cli.data.textures): train, test
    and, with ``val``, validation."""
    from bench_cli.data.textures import region_dataset

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    out = {}
    for split, count, offset in _splits(params):
        data = region_dataset(count, params.size, params.regions, seed + offset, split)
        out.update({f"{split}_{name}": tensor for name, tensor in data.items()})
    return out


DISTINCT_CLASSES = 8  # len(bench_cli.data.textures.CLASSES), without importing it here


class SegmentationParams(FamilyParams):
    """Images, superpixels and ground-truth segments (the DeepNC task)."""

    train: PositiveInt = Field(16, description="training images")
    val: NonNegativeInt = Field(
        0,
        description="validation images (mosaics: from the training half of each photograph, "
        "never its training part; BSDS: images/val); the task metric tunes on them",
    )
    test: PositiveInt = Field(8, description="test images")
    size: PositiveInt = Field(48, description="pixels per side")
    regions: PositiveInt = Field(5, description="mosaic regions (ground-truth segments)")
    superpixels: PositiveInt = Field(60, description="SLIC superpixels per image (about)")
    data_root: str | None = Field(
        None,
        description="a BSDS500 folder: use its images instead (train from images/train, "
        "test from images/test)",
    )

    @model_validator(mode="after")
    def _root_exists(self):
        if self.data_root is not None:
            from pathlib import Path

            if not Path(self.data_root).is_dir():
                raise ValueError(f"data_root {self.data_root}: folder not found")
        elif self.regions > DISTINCT_CLASSES:
            raise ValueError(
                f"regions {self.regions}: mosaic segments have distinct texture classes, "
                f"and there are {DISTINCT_CLASSES}"
            )
        return self


def generate_segmentation(
    params: SegmentationParams, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Images, superpixel maps, ground-truth segments (and texture classes for mosaics), for
    train, test and, with ``val``, validation."""
    from bench_cli.data.segmentation import examples

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    out: dict[str, torch.Tensor] = {}
    for split, count, offset in _splits(params):
        items = examples(
            count,
            params.size,
            params.regions,
            params.superpixels,
            seed + offset,
            params.data_root,
            split,
        )
        for name in items[0]:
            key = "images" if name == "image" else name
            out[f"{split}_{key}"] = torch.stack([item[name] for item in items])
    return out


FAMILIES: dict[str, InputFamily] = {
    "spd": InputFamily(
        "spd",
        SpdParams,
        generate_spd,
        "random SPD matrices Q diag(λ) Qᵀ, Q Haar, λ from 1 to 1/condition",
    ),
    "features": InputFamily(
        "features",
        FeatureParams,
        generate_features,
        "feature sets X (B, N, C), Gaussian with a population covariance of given condition",
    ),
    "ratio": InputFamily(
        "ratio",
        RatioParams,
        generate_ratio,
        "an eigenvalue pair (x, 1), for the gap term 1/(1 − x) and its approximations",
    ),
    "mosaic": InputFamily(
        "mosaic",
        MosaicParams,
        generate_mosaics,
        "texture mosaics (brick/grass/gravel x 2 orientations) with region masks and labels",
    ),
    "segmentation": InputFamily(
        "segmentation",
        SegmentationParams,
        generate_segmentation,
        "images with SLIC superpixels and ground-truth segments: texture mosaics, or BSDS500",
    ),
    "covariance": InputFamily(
        "covariance",
        CovarianceParams,
        generate_covariance,
        "sample covariances XcᵀXc/N + εI; rank-deficient when samples <= channels",
    ),
}
