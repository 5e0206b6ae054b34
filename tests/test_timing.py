"""The Timer's protocol on the CPU, and its CUDA and MPS paths with stand-ins for the
device calls, so CI checks the calls and their order without a GPU."""

import contextlib
import statistics
import types

import pytest
import torch

from bench_cli.metrics import timing


class FakeClock:
    """A clock that moves only when told to (plus 1 ns per read, like a real clock's
    resolution): what the timer measures is then exact, under any machine load."""

    def __init__(self, tick: float = 1e-9):
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        now = self.now
        self.now += self.tick
        return now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_cpu_timer_calibrates_repeats_to_the_budget():
    clock = FakeClock()
    calls = []

    def fn(_):
        calls.append(1)
        clock.advance(0.001)

    samples = timing.Timer("cpu", clock=clock).measure(
        fn, budget_s=0.02, warmup=2, min_repeats=3, max_repeats=1000
    )
    # 1 ms per call and a 20 ms budget: 20 repeats, each sample the call's 1 ms.
    assert len(samples) == 20
    assert samples == pytest.approx([0.001] * 20, rel=1e-5)
    assert len(calls) == len(samples) + 2  # the warm-up calls are not samples


def test_setup_runs_untimed():
    clock = FakeClock()

    def setup():
        clock.advance(0.01)
        return 7

    seen = []

    def fn(state):
        seen.append(state)
        clock.advance(0.002)

    samples = timing.Timer("cpu", clock=clock).measure(
        fn, setup, budget_s=0.001, warmup=1, min_repeats=3, max_repeats=3
    )
    # The 10 ms setup is outside the timed window: each sample is the 2 ms call alone.
    assert samples == pytest.approx([0.002] * 3, rel=1e-5)
    assert set(seen) == {7}


def test_a_wrong_clock_reading_shows_in_the_samples():
    """The check above can fail: a timer that read the clock before its setup would time
    setup and call together."""
    clock = FakeClock()

    class Early(timing.Timer):
        def _block(self, fn, setup, flush, calls):
            began = self._clock()
            states = [setup() if setup else None for _ in range(calls)]
            for state in states:
                fn(state)
            return self._clock() - began

    samples = Early("cpu", clock=clock).measure(
        lambda _: clock.advance(0.002), lambda: clock.advance(0.01),
        budget_s=0.001, warmup=1, min_repeats=3, max_repeats=3,
    )  # fmt: skip
    assert samples != pytest.approx([0.002] * 3, rel=1e-5)


def test_min_and_max_repeats_bound_the_count():
    clock = FakeClock()
    timer = timing.Timer("cpu", clock=clock)
    slow = lambda _: clock.advance(1e-3)  # noqa: E731
    assert len(timer.measure(slow, budget_s=10, warmup=1, min_repeats=1, max_repeats=4)) == 4
    assert len(timer.measure(slow, budget_s=1e-6, warmup=1, min_repeats=3, max_repeats=10)) == 3


def test_calls_shorter_than_a_hundred_ticks_are_timed_in_blocks():
    clock = FakeClock(tick=1e-9)  # a 1 ns clock: blocks must last 100 ns
    setups = []

    def setup():
        setups.append(len(setups))
        return None

    measured = timing.Timer("cpu", clock=clock).measure_detail(
        lambda _: clock.advance(1e-8), setup, budget_s=1e-6, warmup=1, min_repeats=5,
        max_repeats=5,
    )  # fmt: skip
    # 10 ns per call (11 with the read): 10 calls per block of at least 100 ns.
    assert measured.calls == 10 and len(measured.samples) == 5
    assert measured.samples == pytest.approx([1e-8] * 5, rel=0.05)  # per call, not per block
    assert len(setups) == 1 + 5 * 10  # the warm-up, then every call's own setup
    assert (
        timing.Timer("cpu", clock=clock)
        .measure_detail(
            lambda _: clock.advance(1e-3), budget_s=0.0, warmup=1, min_repeats=2, max_repeats=2
        )
        .calls
        == 1
    )  # a long call is timed alone


def test_interleaved_rounds_rotate_the_order_and_pair_the_samples():
    clock = FakeClock()
    order = []

    def method(name, seconds):
        def fn(_):
            order.append(name)
            clock.advance(seconds)

        return fn, None

    runs = [method("A", 1e-3), method("B", 2e-3), method("C", 3e-3)]
    measured = timing.Timer("cpu", clock=clock).interleave(
        runs, budget_s=0.0, warmup=1, min_repeats=3, max_repeats=3
    )
    assert order[3:] == list("ABCBCACAB")  # after one warm-up call each
    assert [m.samples for m in measured] == [
        pytest.approx([s] * 3, rel=1e-5) for s in (1e-3, 2e-3, 3e-3)
    ]


def test_interleaving_cancels_drift_that_sequential_timing_reports_as_a_difference():
    """A machine slowing down steadily (a neighbour starting work): two identical methods
    timed one after the other differ; interleaved, their per-round ratios are 1."""
    clock = FakeClock()
    slowdown = [1.0]

    def same_method(_):
        clock.advance(1e-3 * slowdown[0])
        slowdown[0] *= 1.05  # each call 5% slower than the one before

    timer = timing.Timer("cpu", clock=clock)
    options = dict(budget_s=0.0, warmup=1, min_repeats=20, max_repeats=20)
    first = timer.measure(same_method, **options)
    second = timer.measure(same_method, **options)
    assert statistics.median(second) / statistics.median(first) > 2  # a false "slower"
    a, b = timer.interleave([(same_method, None), (same_method, None)], **options)
    ratios = [y / x for x, y in zip(a.samples, b.samples, strict=True)]
    assert 0.9 < statistics.median(ratios) < 1.1


class FakeCuda:
    """Stands in for torch.cuda: logs device switches, streams, events and syncs."""

    def __init__(self, monkeypatch):
        self.log: list[tuple] = []
        self.current = 0
        self.clock = FakeClock()
        cuda = self

        class Event:
            def __init__(self, enable_timing=False):
                assert enable_timing
                self.t = None

            def record(self, stream=None):
                cuda.log.append(("record", stream))
                self.t = cuda.clock()

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
    timer = timing.Timer("cuda", clock=cuda.clock)
    assert timer.clock == "cuda_event"
    samples = timer.measure(
        lambda _: cuda.clock.advance(0.002), budget_s=0.01, warmup=1, min_repeats=4,
        max_repeats=4,
    )  # fmt: skip
    assert samples == pytest.approx([0.002] * 4, rel=1e-5)
    # warm-up: sync before and after the one call; then a single sync to read all events.
    assert [e for e in cuda.log if e[0] == "sync"] == [("sync", "cuda")] * 3
    assert not any(e[0] == "current" for e in cuda.log)  # plain "cuda": the current device


def test_cuda_n_is_made_current_and_its_stream_carries_the_events(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    calls = []

    def work(_):
        calls.append(cuda.current)  # the device the work is queued on

    timing.Timer("cuda:1", clock=cuda.clock).measure(
        lambda state: work(state) or cuda.clock.advance(1e-3),
        budget_s=0.0, warmup=1, min_repeats=3, max_repeats=3,
    )  # fmt: skip
    assert cuda.log[0] == ("current", 1) and cuda.log[-1] == ("restored", 0)
    assert set(calls) == {1}
    records = [e for e in cuda.log if e[0] == "record"]
    assert records == [("record", "stream of cuda:1")] * 6  # start and end of 3 samples
    assert cuda.current == 0  # restored


def test_mps_synchronises_around_every_timed_call(monkeypatch):
    log = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: log.append("sync"))
    clock = FakeClock()
    timer = timing.Timer("mps", clock=clock)
    assert timer.clock == "perf_counter+mps_sync"
    timer.measure(
        lambda _: log.append("call") or clock.advance(1e-3),
        budget_s=0.0, warmup=1, min_repeats=3, max_repeats=3,
    )  # fmt: skip
    assert log == ["sync", "call", "sync"] * 4  # one warm-up call, then 3 samples


def test_other_device_types_are_refused_by_name():
    with pytest.raises(ValueError, match="cannot time on device type 'xpu'"):
        timing.Timer("xpu")


def test_the_flush_runs_after_setup_and_right_before_each_timed_call():
    log = []

    def setup():
        log.append("setup (e.g. the untimed forward)")

    timing.Timer("cpu", clock=FakeClock()).measure(
        lambda _: log.append("timed"),
        setup,
        budget_s=0.0,
        warmup=1,
        min_repeats=2,
        max_repeats=2,
        flush=lambda: log.append("flush"),
    )  # fmt: skip (a 0 ns call: with a flush it is still timed alone, flush first)
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
