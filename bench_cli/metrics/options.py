"""Options of every metric: plain pydantic models, importable without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

Mode = Literal["fwd", "bwd", "fwd_bwd"]
ALL_MODES: tuple[Mode, ...] = ("fwd", "bwd", "fwd_bwd")
MODE_LABELS = {
    "fwd": "forward, autograd recording on",
    "bwd": "backward only (forward untimed)",
    "fwd_bwd": "forward + backward",
}


class TimeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    budget_s: PositiveFloat = Field(0.25, description="seconds of timed calls per mode")
    warmup: PositiveInt = 2
    # At least noise.MIN_SAMPLES: fewer give no usable IQR, and the record is flagged.
    min_repeats: PositiveInt = 10
    max_repeats: PositiveInt = 2000
    modes: list[Mode] = Field(default_factory=lambda: list(ALL_MODES), min_length=1)
    rotate_below_bytes: int = Field(
        8 * 2**20, ge=0, description="rotate among input sets when the inputs are smaller"
    )
    input_sets: PositiveInt = 4
    flush_l2: bool | None = Field(
        None,
        description="on CUDA, overwrite a buffer of twice the L2 right before each timed "
        "call, after its setup (outside the timed window); default: on for CUDA",
    )


class FirstCallOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    repeats: PositiveInt = Field(3, description="cold starts, each in a fresh process")
    inductor_cache: Literal["empty", "shared"] = Field(
        "empty",
        description="empty: a new inductor cache folder per process (a compile from "
        "nothing, as on a fresh machine); shared: the user's cache (a second run)",
    )


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GradOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    convention: Literal["method", "symmetrised", "as_given"] = Field(
        "method",
        description="the reference for a symmetric-matrix input A: the gradient of "
        "f((A+Aᵀ)/2) (symmetrised: every bundled method), of f(A) with A taken as given "
        "(as_given: a method registered with symmetrises=False), or each method's own "
        "(method); the record's metric_options say which one was used",
    )


class FdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min_exponent: int = 1
    max_exponent: int = 20


class TermsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    option: str = "iters"  # the method option swept: 1, 2, 3, ...
    tolerance: float = Field(0.05, gt=0.0, lt=1.0)
    limit: int = Field(10_000, ge=1)


class StabilityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    explode_factor: PositiveFloat = 1e3


class TaskOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Initialisation seeds 0 .. seeds-1, the same for every method and data draw: a separate
    # axis from the data (inputs' data_seed), which decides the images.
    seeds: PositiveInt = 3
    # The epoch budget: with a validation split the best epoch on it is kept, else the last.
    epochs: PositiveInt = 15
    batch: PositiveInt = 8
    # One learning rate, or the grid every method is tuned over on the validation split
    # (the inputs' val images): the same budget for every method.
    lr: PositiveFloat | list[PositiveFloat] = 3e-3
