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
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt


class FamilyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class InputFamily:
    name: str
    params: type[FamilyParams]
    generate: Callable[[FamilyParams, torch.Generator], dict[str, torch.Tensor]]
    summary: str


def haar_orthogonal(batch: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Orthogonal matrices drawn from the Haar measure (QR of a Gaussian, signs fixed)."""
    gaussian = torch.randn(batch, dim, dim, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(gaussian)
    # Without the sign fix QR's output is not Haar-distributed (Mezzadri 2007).
    return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)


class SpdParams(FamilyParams):
    batch: PositiveInt = 8
    dim: PositiveInt
    condition: float = Field(100.0, ge=1.0, description="λmax / λmin")
    spectrum: Literal["geometric", "linear"] = "geometric"


def spd_eigvals(params: SpdParams) -> torch.Tensor:
    """Eigenvalues from 1 down to 1/condition, descending."""
    t = torch.linspace(0.0, 1.0, params.dim, dtype=torch.float64)
    if params.spectrum == "geometric":
        return torch.exp(-t * math.log(params.condition))
    return 1.0 - t * (1.0 - 1.0 / params.condition)


def generate_spd(params: SpdParams, generator: torch.Generator) -> dict[str, torch.Tensor]:
    eigvecs = haar_orthogonal(params.batch, params.dim, generator)
    eigvals = spd_eigvals(params)
    A = (eigvecs * eigvals) @ eigvecs.mT
    return {"A": 0.5 * (A + A.mT)}


class FeatureParams(FamilyParams):
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
}
