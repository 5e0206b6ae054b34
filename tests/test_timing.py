"""The Timer's protocol on the CPU, and its CUDA and MPS paths with stand-ins for the
device calls, so CI checks the calls and their order without a GPU."""

import contextlib
import time
import types

import pytest
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


class FakeCuda:
    """Stands in for torch.cuda: logs device switches, streams, events and syncs."""

    def __init__(self, monkeypatch):
        self.log: list[tuple] = []
        self.current = 0
        cuda = self

        class Event:
            def __init__(self, enable_timing=False):
                assert enable_timing
                self.t = None

            def record(self, stream=None):
                cuda.log.append(("record", stream))
                self.t = time.perf_counter()

            def elapsed_time(self, end):  # milliseconds, as CUDA events report
                return (end.t - self.t) * 1e3

        @contextlib.contextmanager
        def device(index):
            before, cuda.current = cuda.current, index
            cuda.log.append(("current", index))
            try:
                yield
            finally:
                cuda.current = before
                cuda.log.append(("restored", before))

        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "device", device)
        monkeypatch.setattr(
            torch.cuda, "current_stream", lambda d=None: f"stream of cuda:{cuda.current}"
        )
        monkeypatch.setattr(
            torch.cuda, "synchronize", lambda d=None: cuda.log.append(("sync", str(d)))
        )


def test_cuda_path_uses_events_and_one_synchronize(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    timer = timing.Timer("cuda")
    assert timer.clock == "cuda_event"
    samples = timer.measure(
        lambda _: time.sleep(0.002), budget_s=0.01, warmup=1, min_repeats=4, max_repeats=4
    )
    assert len(samples) == 4 and all(0.002 <= s < 0.1 for s in samples)
    # warm-up: sync before and after the one call; then a single sync to read all events.
    assert [e for e in cuda.log if e[0] == "sync"] == [("sync", "cuda")] * 3
    assert not any(e[0] == "current" for e in cuda.log)  # plain "cuda": the current device


def test_cuda_n_is_made_current_and_its_stream_carries_the_events(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    calls = []

    def work(_):
        calls.append(cuda.current)  # the device the work is queued on

    timing.Timer("cuda:1").measure(work, budget_s=0.0, warmup=1, min_repeats=3, max_repeats=3)
    assert cuda.log[0] == ("current", 1) and cuda.log[-1] == ("restored", 0)
    assert set(calls) == {1}
    records = [e for e in cuda.log if e[0] == "record"]
    assert records == [("record", "stream of cuda:1")] * 6  # start and end of 3 samples
    assert cuda.current == 0  # restored


def test_mps_synchronises_around_every_timed_call(monkeypatch):
    log = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: log.append("sync"))
    timer = timing.Timer("mps")
    assert timer.clock == "perf_counter+mps_sync"
    timer.measure(
        lambda _: log.append("call"), budget_s=0.0, warmup=1, min_repeats=3, max_repeats=3
    )
    assert log == ["sync", "call", "sync"] * 4  # one warm-up call, then 3 samples


def test_other_device_types_are_refused_by_name():
    with pytest.raises(ValueError, match="cannot time on device type 'xpu'"):
        timing.Timer("xpu")


def test_the_flush_runs_after_setup_and_right_before_each_timed_call():
    log = []

    def setup():
        log.append("setup (e.g. the untimed forward)")

    timing.Timer("cpu").measure(
        lambda _: log.append("timed"), setup, budget_s=0.0, warmup=1, min_repeats=2,
        max_repeats=2, flush=lambda: log.append("flush"),
    )  # fmt: skip
    assert log == ["setup (e.g. the untimed forward)", "flush", "timed"] * 3


def test_the_l2_flush_is_on_by_default_for_gpus_only_and_twice_the_l2():
    from bench_cli.metrics.options import TimeOptions

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert timing.flush_enabled(TimeOptions(), cuda)
    assert not timing.flush_enabled(TimeOptions(), cpu)
    assert not timing.flush_enabled(TimeOptions(flush_l2=False), cuda)
    assert not timing.flush_enabled(TimeOptions(flush_l2=True), cpu)  # nothing to flush
    # An H200's 60 MiB L2: a 120 MiB buffer (allocated on the CPU here).
    assert timing._L2Flusher(cpu, l2_bytes=60 * 2**20).nbytes == 120 * 2**20
    assert timing._L2Flusher(cpu, l2_bytes=4 * 2**20).nbytes == 64 * 2**20  # a floor
    assert timing._L2Flusher(cpu, l2_bytes=0).nbytes == 256 * 2**20  # L2 not reported


def test_the_l2_size_is_read_from_the_device_properties(monkeypatch):
    props = types.SimpleNamespace(L2_cache_size=50 * 2**20)
    seen = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: seen.append(i) or props)
    assert timing.l2_cache_bytes(torch.device("cuda:1")) == 50 * 2**20 and seen == [1]
