"""The Timer's protocol on the CPU, and its CUDA-event path with a stand-in event."""

import time

import torch

from bench_cli.metrics import timing


def test_cpu_timer_calibrates_repeats_to_the_budget():
    calls = []

    def fn(_):
        calls.append(1)
        time.sleep(0.001)

    samples = timing.Timer("cpu").measure(
        fn, budget_s=0.02, warmup=2, min_repeats=3, max_repeats=1000
    )
    # ~1 ms per call and a 20 ms budget: about 20 repeats (sleep overshoots, so fewer).
    assert 3 <= len(samples) <= 21
    assert all(s >= 0.001 for s in samples)
    assert len(calls) == len(samples) + 2  # the warm-up calls are not samples


def test_setup_runs_untimed():
    def setup():
        time.sleep(0.01)
        return 7

    seen = []
    samples = timing.Timer("cpu").measure(
        seen.append, setup, budget_s=0.001, warmup=1, min_repeats=3, max_repeats=3
    )
    # The 10 ms setup is outside the timed window: the median call is far below it (a
    # median, so one call preempted on a loaded machine cannot fail the test).
    assert len(samples) == 3 and sorted(samples)[1] < 0.01
    assert set(seen) == {7}


def test_min_and_max_repeats_bound_the_count():
    timer = timing.Timer("cpu")
    assert (
        len(timer.measure(lambda _: None, budget_s=10, warmup=1, min_repeats=1, max_repeats=4)) == 4
    )
    assert (
        len(
            timer.measure(
                lambda _: time.sleep(0.005), budget_s=1e-6, warmup=1, min_repeats=3, max_repeats=10
            )
        )
        == 3
    )


class FakeEvent:
    """Stands in for torch.cuda.Event: records the host clock when 'recorded'."""

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.t = None

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, end):  # milliseconds, as CUDA events report
        return (end.t - self.t) * 1e3


def test_cuda_path_uses_events_and_one_synchronize(monkeypatch):
    syncs = []
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: syncs.append(device))
    timer = timing.Timer("cuda")
    assert timer.clock == "cuda_event"
    samples = timer.measure(
        lambda _: time.sleep(0.002), budget_s=0.01, warmup=1, min_repeats=4, max_repeats=4
    )
    assert len(samples) == 4 and all(0.002 <= s < 0.1 for s in samples)
    # warm-up: sync before and after the one call; then a single sync to read all events.
    assert len(syncs) == 3
