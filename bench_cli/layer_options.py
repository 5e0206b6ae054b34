"""The options every method of a layer shares (func, eps, k, affinity, ...), as pydantic
models the suite schema validates against; a method's own options are read from its
signature (bench_cli.registry.options_model)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from bench_cli.layers import ncut


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Func = Literal["log", "sqrt", "invsqrt", "pow", "identity"]


class _FuncOptions(_Options):
    """func and its exponent p; subclasses declare func first, so it lists first."""

    @model_validator(mode="after")
    def _p_goes_with_pow(self):
        if self.func == "pow" and self.p is None:
            raise ValueError("func 'pow' needs the exponent p")
        if self.func != "pow" and self.p is not None:
            raise ValueError(f"option p applies to func 'pow' only, not '{self.func}'")
        return self


class MatrixFunctionOptions(_FuncOptions):
    """Options of matrix_function: func and, for pow, p."""

    func: Func
    p: float | None = None


class O2POptions(_FuncOptions):
    """Options of o2p: func, centring, the regularizer eps."""

    func: Func = "log"
    p: float | None = None
    center: bool = True
    eps: PositiveFloat = Field(1e-3, description="the regularizer εI added to the covariance")
    hidden: int = Field(
        0,
        ge=0,
        description="task benchmarks only: a hidden FC layer of this "
        "width before the classifier (DeepO2P-FC); the layer ignores it",
    )


class NcutOptions(_Options):
    """Options of ncut: k eigenvectors, the affinity and its sigma."""

    k: PositiveInt
    affinity: Literal["gaussian", "cosine"] = "gaussian"
    sigma: PositiveFloat | None = Field(
        None,
        description="the gaussian affinity's scale, in the features' units; required with "
        "it (no default fits every scale: 1.0 left lowrank's gradient error at 0.9-322 on "
        "ncut.yaml's features, where its sigma 4.0 gives 5e-4-4e-2)",
    )
    mode: Literal["trained", "untrained", "raw", "one_segment", "random"] = Field(
        "trained",
        description="task benchmarks only: a backbone trained with loss, the same never "
        "trained, raw intensity statistics (no network), or a trivial prediction that "
        "looks at no image (one segment; each superpixel into a random one of k)",
    )
    loss: Literal["projector", "membership"] = Field(
        "projector",
        description="task benchmarks only: what trains the backbone: the paper's projector "
        "loss through this layer, or the affinity matched to segment membership (no "
        "eigendecomposition)",
    )
    route: Literal["spectral", "kmeans"] = Field(
        "spectral",
        description="task benchmarks only: segments by k-means on the top-k eigenvectors, "
        "or on the features themselves",
    )

    @model_validator(mode="after")
    def _gaussian_needs_sigma(self):
        uses_graph = self.mode not in ("one_segment", "random")  # these look at no image
        if self.affinity == "gaussian" and self.sigma is None and uses_graph:
            raise ValueError(ncut.MISSING_SIGMA)
        return self


class DirectOptions(_Options):
    """Options every direct (one-method) layer shares: task benchmarks only."""

    predict: Literal["network", "majority"] = Field(
        "network",
        description="task benchmarks only: the trained network, or the trivial answer "
        "that looks at no image (the training set's most frequent class for every region)",
    )
