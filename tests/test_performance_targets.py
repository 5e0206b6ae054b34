"""The performance targets' verdict: met only when the whole interval is on the target's
side, missed only when the whole of it is on the other, else not established; and the
declared product count it divides by is the method's FLOP model."""

from bench_cli.benchmarks import performance_targets as targets


def test_a_target_is_met_missed_or_open_by_its_interval():
    # at most 1.3
    assert targets.judge(1.10, 1.25, 1.3, below=True) == targets.MET
    assert targets.judge(1.31, 1.40, 1.3, below=True) == targets.MISSED  # a wrong measurement
    assert targets.judge(1.25, 1.35, 1.3, below=True) == targets.OPEN
    # at least 1.0 (ours at least as fast)
    assert targets.judge(1.02, 1.10, 1.0, below=False) == targets.MET
    assert targets.judge(0.80, 0.95, 1.0, below=False) == targets.MISSED
    assert targets.judge(0.97, 1.04, 1.0, below=False) == targets.OPEN


def test_the_declared_product_count_is_the_flop_model():
    options = {"func": "sqrt", "iters": 5, "norm": "trace", "backward": "adjoint", "p": None}
    # 12 forward products (1 + 3 per middle step + 2), and twice as many backward.
    assert targets.declared_products(32, 128, options) == 36
