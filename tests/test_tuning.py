"""The tuning budget: every learning rate from the same initialisation, the best (learning
rate, epoch) on validation kept, curves and divergence recorded; fakes, no training."""

import math

import pytest
import torch
from torch import nn

from bench_cli.tasks.tuning import tune


class Counter(nn.Module):
    """A model whose one weight counts its training epochs; its init is seed-dependent."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1))
        self.epochs = 0


def fake_clock():
    ticks = iter(range(1000))
    return lambda: float(next(ticks))


def test_the_best_learning_rate_and_epoch_on_validation_are_kept():
    inits = []

    def build():
        model = Counter()
        inits.append(float(model.weight.detach()))
        return model

    def train_epoch(model, optimizer, generator):
        model.epochs += 1
        return 1.0 / model.epochs

    # Validation peaks at lr 0.01, epoch 2: the chosen state must be that one, a copy.
    scores = {0.001: [0.1, 0.2, 0.3], 0.01: [0.4, 0.9, 0.5]}

    def validate(model):
        lr = model.lr_for_test
        return scores[lr][model.epochs - 1]

    def build_with_lr():
        model = build()
        model.lr_for_test = [0.001, 0.01][len(inits) - 1]
        return model

    tuned = tune(build_with_lr, train_epoch, validate, lrs=[0.001, 0.01], epochs=3, seed=5,
                 clock=fake_clock())  # fmt: skip
    assert (tuned.lr, tuned.epoch, tuned.validation) == (0.01, 2, 0.9)
    assert tuned.model.epochs == 2  # the state at epoch 2, not the last one
    assert inits[0] == inits[1]  # the same initialisation for every learning rate
    assert [c["validation"] for c in tuned.curves] == [scores[0.001], scores[0.01]]
    assert [c["loss"] for c in tuned.curves] == [[1.0, 0.5, 1 / 3]] * 2
    assert tuned.epoch_times == [1.0] * 6 and tuned.diverged == 0


def test_a_diverging_learning_rate_stops_and_is_counted():
    def train_epoch(model, optimizer, generator):
        model.epochs += 1
        return math.nan if optimizer.param_groups[0]["lr"] > 0.005 and model.epochs == 2 else 1.0

    tuned = tune(Counter, train_epoch, lambda m: float(m.epochs), lrs=[0.001, 0.01], epochs=3,
                 seed=0, clock=fake_clock())  # fmt: skip
    assert tuned.diverged == 1
    assert len(tuned.curves[1]["loss"]) == 2 and math.isnan(tuned.curves[1]["loss"][1])
    assert (tuned.lr, tuned.epoch) == (0.001, 3)
    everything = tune(Counter, lambda m, o, g: math.nan, None, lrs=[0.1], epochs=2, seed=0)
    assert everything.model is None and everything.diverged == 1


def test_without_validation_one_learning_rate_and_the_last_epoch():
    def train_epoch(model, optimizer, generator):
        model.epochs += 1
        return 1.0

    tuned = tune(Counter, train_epoch, None, lrs=[0.003], epochs=4, seed=0)
    assert (tuned.lr, tuned.epoch, tuned.model.epochs) == (0.003, 4, 4)
    with pytest.raises(ValueError, match="no validation split to choose on"):
        tune(Counter, train_epoch, None, lrs=[0.001, 0.01], epochs=2, seed=0)


def test_a_broken_decomposition_or_poisoned_weights_count_as_diverged():
    """At lr 0.01 o2p-log-eig's non-finite gradient poisoned the weights and the next eigh
    raised; that must cost the learning rate, not the whole case."""

    def train_epoch(model, optimizer, generator):
        model.epochs += 1
        lr = optimizer.param_groups[0]["lr"]
        if lr == 0.01 and model.epochs == 2:
            raise torch.linalg.LinAlgError("linalg.eigh: failed to converge")
        if lr == 0.1:
            with torch.no_grad():
                model.weight.fill_(math.nan)  # as a step with a NaN gradient leaves it
        return 1.0

    tuned = tune(Counter, train_epoch, lambda m: float(m.epochs), lrs=[0.001, 0.01, 0.1],
                 epochs=3, seed=0)  # fmt: skip
    assert tuned.diverged == 2 and (tuned.lr, tuned.epoch) == (0.001, 3)
    stopped = [c.get("stopped") for c in tuned.curves]
    assert stopped[0] is None
    assert stopped[1].startswith("epoch 2: ") and "LinAlgError: linalg.eigh" in stopped[1]
    assert stopped[2] == "epoch 1: non-finite weights (a non-finite gradient)"
    record = tuned.record()
    assert record["curves"][1]["loss"] == [1.0, None]  # JSON-safe: no NaN in a record
    import json

    json.dumps(record, allow_nan=False)
