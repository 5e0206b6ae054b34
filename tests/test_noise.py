"""Noise detection on timing records: made-up machine readings, so every threshold is
checked on both sides without depending on this machine's load."""

import pytest

from bench_cli.metrics import noise
from bench_cli.metrics.noise import Reading

STEADY = [1.0e-3] * 20  # samples with no dispersion


def reading(wall, busy, own, total=None, steal=0.0, load=0.5, involuntary=0):
    total = (2 * wall) if total is None else total  # two cores' worth of jiffies
    return Reading(wall, load, busy, total, steal, own, involuntary)


def assess(before, after, samples=STEADY, threads=2, cores=2):
    return noise.assess(
        samples, before, after, threads=threads, cores=cores, resolution_s=1e-7, calls=1
    )


def test_a_quiet_machine_is_not_noisy_and_every_field_is_recorded():
    # One second in which this process used 1.9 cores and the machine 1.95: others 0.05.
    block = assess(reading(0.0, 0.0, 0.0), reading(1.0, 1.95, 1.9, involuntary=3))
    assert block["noisy"] is False and block["reasons"] == []
    assert block["others_cores"] == pytest.approx(0.05)
    assert block["involuntary_switches"] == 3 and block["n"] == 20
    assert set(block) == {
        "load_before", "load_after", "cores", "threads", "others_cores", "steal",
        "involuntary_switches", "n", "iqr_over_median", "timer_resolution_s",
        "calls_per_sample", "noisy", "reasons",
    }  # fmt: skip


def test_other_processes_on_the_cores_flag_the_record():
    # The machine was busy 3.6 core-seconds in 1 s... of which this process 2.0: a busy
    # process on each core beside a 2-thread measurement.
    block = assess(reading(0.0, 0.0, 0.0), reading(1.0, 3.6, 2.0, total=4.0))
    assert block["noisy"] and block["reasons"] == ["load: other processes used 1.6 of 2 cores"]


def test_own_cpu_time_is_not_mistaken_for_load():
    """The check can fail the other way: counting this process's own threads as "others"
    would flag every multi-threaded measurement."""
    block = assess(reading(0.0, 0.0, 0.0), reading(1.0, 2.0, 2.0))
    assert not block["noisy"]


def test_free_cores_absorb_other_work():
    # 1 thread on 4 cores: 2 other busy cores leave one free; 3.6 do not.
    assert not assess(reading(0, 0, 0), reading(1.0, 3.0, 1.0), threads=1, cores=4)["noisy"]
    assert assess(reading(0, 0, 0), reading(1.0, 4.6, 1.0), threads=1, cores=4)["noisy"]


def test_dispersion_samples_and_steal_cross_their_thresholds():
    quiet = (reading(0.0, 0.0, 0.0), reading(1.0, 1.0, 1.0))
    spread = [1.0, 1.0, 1.0, 1.3, 1.3, 1.3, 1.0, 1.3, 1.0, 1.3] * 2  # IQR 0.3, median 1.15: 26%
    assert assess(*quiet, samples=spread)["reasons"] == ["dispersion: IQR is 26% of the median"]
    tight = [1.0, 1.1] * 10  # IQR 10%
    assert not assess(*quiet, samples=tight)["noisy"]
    assert assess(*quiet, samples=STEADY[:9])["reasons"] == ["samples: 9 < 10"]
    assert not assess(*quiet, samples=STEADY[:10])["noisy"]
    stolen = assess(reading(0, 0, 0), reading(1.0, 1.0, 1.0, total=2.0, steal=0.3))
    assert stolen["reasons"] == ["steal: the hypervisor took 15% of CPU time"]


def test_without_proc_stat_the_load_average_decides():
    def bare(wall, load):
        return Reading(wall, load, None, None, None, 0.0, None)

    assert not assess(bare(0, 1.0), bare(1, 2.2))["noisy"]
    assert assess(bare(0, 1.0), bare(1, 3.0))["reasons"] == ["load: load average 3.0 on 2 cores"]


def test_tiny_calls_are_batched_to_a_hundred_ticks():
    assert noise.calls_per_sample(1e-3, 1e-7) == 1
    assert noise.calls_per_sample(1e-6, 1e-7) == 10
    assert noise.calls_per_sample(0.0, 1e-7) == 100  # a call below one tick


def test_the_real_reader_reads_this_machine():
    r = noise.read_machine()
    assert r.own_s > 0 and r.wall > 0
    assert noise.cpu_count() >= 1 and 0 < noise.perf_counter_resolution() < 1e-3


def test_paired_ratios_have_their_own_dispersion():
    mode = {
        "noise": {"noisy": True, "reasons": ["dispersion: IQR is 40% of the median"]},
        "paired": {"baseline": "a", "ratios": [2.0, 2.02, 1.98, 2.01] * 5},
    }
    # Raw samples dispersed (the load moved), ratios tight: the ratio is not noisy.
    assert noise.paired_reasons(mode) == []
    mode["paired"]["ratios"] = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0] * 3
    assert noise.paired_reasons(mode)[0].startswith("dispersion: IQR of the paired ratios")
