"""Conclusions across metrics and against trivial answers, generated from paired intervals:
each sentence moves when a number that supports it is made wrong."""

from bench_cli import claims, paired, spec, tables


def _records(values: dict[str, dict[str, list[float]]]) -> list[dict]:
    """values[method][score] = one number per data seed."""
    out = []
    for method, scores in values.items():
        seeds = len(next(iter(scores.values())))
        for seed in range(seeds):
            out.append(
                {
                    "case": f"{method}-{seed}",
                    "metric": "task",
                    "status": "ok",
                    "value": {name: {"samples": [v[seed]]} for name, v in scores.items()},
                    "axes": {"method": method, "data_seed": seed},
                    "params": {
                        "inputs": {"kind": "segmentation", "data_seed": seed},
                        "device": "cpu",
                        "dtype": "float32",
                    },
                }
            )
    return out


def _tables(records, baseline="nc", trivial=("one",)):
    made = []
    for name, better in (("rand", "lower"), ("voi", "lower"), ("acc", "higher")):
        table_spec = spec.TableSpec(
            title=name,
            metric=f"task.{name}.mean",
            paired=spec.PairedSpec(baseline=baseline, better=better, trivial=list(trivial)),
        )
        made.append(tables.build(records, table_spec))
    return made


BASE = {
    "nc": {"rand": [0.50, 0.52, 0.51, 0.53], "voi": [3.0, 3.1, 3.0, 3.2],
           "acc": [0.50, 0.52, 0.51, 0.50]},
    # Better on VOI on every data set, Rand error spread around nc's, accuracy higher.
    "learned": {"rand": [0.55, 0.47, 0.56, 0.48], "voi": [2.8, 2.9, 2.8, 3.0],
                "acc": [0.60, 0.62, 0.61, 0.60]},
    # One segment: good Rand error and VOI (they reward merging), poor accuracy.
    "one": {"rand": [0.40, 0.41, 0.40, 0.42], "voi": [1.8, 1.9, 1.8, 1.9],
            "acc": [0.38, 0.40, 0.39, 0.41]},
}  # fmt: skip


def test_a_method_is_described_on_every_metric_at_once():
    text = claims.conclusions(_tables(_records(BASE)))
    line = next(x for x in text.splitlines() if x.startswith("- `learned` against `nc`"))
    # Not "not shown to differ" alone: VOI says better, Rand error says nothing.
    assert "not shown to differ on rand" in line
    assert "better, but not than every trivial answer, on voi" in line
    assert "better on acc" in line


def test_trivial_answers_are_named_where_a_method_does_not_beat_them():
    text = claims.conclusions(_tables(_records(BASE)))
    for method in ("nc", "learned"):
        line = next(x for x in text.splitlines() if x.startswith(f"- `{method}` is not shown"))
        assert "rand (`one`)" in line and "voi (`one`)" in line
        assert "acc" not in line  # both beat one segment on matched accuracy
    # A wrong measurement: learned's accuracy copied from one segment's. It must now be
    # named short of the trivial answer on accuracy too, and not better than nc there.
    wrong = {**BASE, "learned": {**BASE["learned"], "acc": list(BASE["one"]["acc"])}}
    text = claims.conclusions(_tables(_records(wrong)))
    line = next(x for x in text.splitlines() if x.startswith("- `learned` is not shown"))
    assert "acc (`one`)" in line
    assert "better on acc" not in text


def test_better_everywhere_reads_as_every_metric_and_beats_trivial():
    good = {
        "nc": BASE["nc"],
        "great": {"rand": [0.30, 0.31, 0.32, 0.30], "voi": [1.0, 1.1, 1.0, 1.2],
                  "acc": [0.90, 0.91, 0.92, 0.90]},
        "one": BASE["one"],
    }  # fmt: skip
    text = claims.conclusions(_tables(_records(good)))
    assert "`great` against `nc`: better on every metric (rand" in text
    assert "`great` is not shown" not in text
    rows = {r.method: r for r in _tables(_records(good))[0].paired.rows}
    assert rows["great"].verdict == paired.BETTER and rows["great"].beats_trivial
    assert rows["one"].verdict == paired.TRIVIAL


def test_the_paired_table_shows_each_trivial_answer_and_qualifies_the_verdict():
    rand = _tables(_records(BASE))[0]
    frame = rand.frame
    assert "minus one [95% CI]" in frame.columns
    assert frame.loc["learned", "verdict"] == paired.NO_DIFFERENCE
    voi = _tables(_records(BASE))[1].frame
    assert voi.loc["learned", "verdict"] == paired.BETTER_NOT_TRIVIAL
    assert voi.loc["one", "verdict"] == paired.TRIVIAL
    assert "trivial answers: one" in _tables(_records(BASE))[1].metric
    sentence = tables.paired_claims(_tables(_records(BASE))[1])
    assert "not shown better than the trivial answers (`one`): `nc`, `learned`" in sentence


def test_no_paired_tables_no_conclusions():
    assert claims.conclusions([]) == ""


def test_a_diagnostic_reads_higher_or_lower_and_draws_no_conclusion():
    records = _records(BASE)
    table_spec = spec.TableSpec(
        title="cos", metric="task.acc.mean",
        paired=spec.PairedSpec(baseline="nc", better="none", trivial=["one"]),
    )  # fmt: skip
    table = tables.build(records, table_spec)
    assert table.frame.loc["learned", "verdict"] == paired.HIGHER
    assert table.frame.loc["one", "verdict"] == paired.LOWER  # no trivial answer here
    assert "no direction is better" in table.metric
    assert claims.conclusions([table]) == ""
