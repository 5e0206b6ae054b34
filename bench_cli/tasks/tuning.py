"""The same tuning budget for every method: a learning-rate grid and an epoch budget,
chosen on a validation split.

For each learning rate the network starts from the same initialisation (the run's seed)
and trains for the epoch budget; after every epoch it is scored on the validation split,
and the state with the best validation score over every (learning rate, epoch) is the
one tested. Without a validation split there is nothing to choose on: one learning rate
is allowed, and the last epoch is tested, as before tuning existed.

Every training curve (loss and validation score per epoch, per learning rate) is
returned, so a record shows how the choice was made. A learning rate whose training
breaks stops there and is counted as diverged, never hidden, with the reason in its
curve: a non-finite loss, weights a non-finite gradient poisoned, or a decomposition
that failed on the degenerate matrices such weights produce (``LinAlgError``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# One epoch: (model, optimizer, generator) -> mean training loss (NaN/inf: diverged).
TrainEpoch = Callable[[nn.Module, torch.optim.Optimizer, torch.Generator], float]
Validate = Callable[[nn.Module], float]  # higher is better


@dataclass
class Tuned:
    """The chosen state and how it was chosen."""

    model: nn.Module | None  # None: every learning rate diverged before its first epoch
    lr: float | None
    epoch: int | None  # 1-based epoch of the chosen state
    validation: float | None  # its validation score
    curves: list[dict[str, Any]] = field(default_factory=list)
    epoch_times: list[float] = field(default_factory=list)
    diverged: int = 0  # learning rates whose training broke (see the module docstring)

    def record(self) -> dict[str, Any]:
        """The choice and its curves as plain JSON values (6 digits; None for a loss that
        was not finite)."""

        def plain(values: list[float]) -> list[float | None]:
            return [round(v, 6) if math.isfinite(v) else None for v in values]

        return {
            "lr": self.lr,
            "epoch": self.epoch,
            "validation": self.validation,
            "curves": [
                {**curve, "loss": plain(curve["loss"]), "validation": plain(curve["validation"])}
                for curve in self.curves
            ],
        }


def tune(
    build: Callable[[], nn.Module],
    train_epoch: TrainEpoch,
    validate: Validate | None,
    *,
    lrs: float | Sequence[float],
    epochs: int,
    seed: int,
    clock: Callable[[], float] = time.perf_counter,
) -> Tuned:
    """Train ``build()`` at every learning rate of ``lrs`` for ``epochs`` epochs from the
    seed's initialisation; keep the state with the best ``validate`` score (or, without
    ``validate``, the last epoch of the one learning rate)."""
    lrs = [lrs] if isinstance(lrs, int | float) else list(lrs)
    if not lrs:
        raise ValueError("no learning rate to train with")
    if validate is None and len(lrs) > 1:
        raise ValueError(
            f"{len(lrs)} learning rates to choose from, but no validation split to choose "
            "on: give the inputs val: images, or one lr"
        )
    best = Tuned(None, None, None, None)
    best_score = -math.inf
    for lr in lrs:
        torch.manual_seed(seed)  # the same initialisation for every learning rate
        generator = torch.Generator().manual_seed(seed)
        model = build()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        curve: dict[str, Any] = {"lr": lr, "loss": [], "validation": []}
        best.curves.append(curve)
        for epoch in range(1, epochs + 1):
            start = clock()
            try:
                loss, broke = train_epoch(model, optimizer, generator), None
            except torch.linalg.LinAlgError as exc:
                loss, broke = math.nan, f"{type(exc).__name__}: {str(exc)[:120]}"
            best.epoch_times.append(clock() - start)
            curve["loss"].append(loss)
            if broke is None and not math.isfinite(loss):
                broke = "non-finite loss"
            if broke is None and not all(bool(p.isfinite().all()) for p in model.parameters()):
                broke = "non-finite weights (a non-finite gradient)"
            if broke is not None:
                best.diverged += 1
                curve["stopped"] = f"epoch {epoch}: {broke}"
                break
            if validate is None:
                if epoch == epochs:
                    best.model, best.lr, best.epoch = model, lr, epoch
                continue
            score = validate(model)
            curve["validation"].append(score)
            if score > best_score:
                best_score = score
                best.model, best.lr, best.epoch = copy.deepcopy(model), lr, epoch
                best.validation = score
    return best
