"""Each command through Typer's CliRunner."""

import json
from pathlib import Path

from tests.conftest import BASE_SUITE
from tests.helpers import read_records as _records


def test_run_writes_env_records_tables_and_prints_tables(cli, write_suite, tmp_path):
    result = cli("run", write_suite(), "--out", "out")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out"
    env = json.loads((folder / "env.json").read_text())
    for key in (
        "torch",
        "cpu_model",
        "cpu_count",
        "torch_threads",
        "blas_lapack",
        "matbench",
        "git",
        "machine_key",
        "cuda",
        "gpus",
    ):
        assert key in env
    records = _records(folder)
    assert len(records) == 2 * 2 * 2  # 2 methods x 2 dims x 2 metrics
    assert {r["status"] for r in records} == {"ok"}
    assert (folder / "suite.yaml").read_text() == BASE_SUITE
    for suffix in (".md", ".csv", ".tex"):
        assert (folder / "tables" / f"time{suffix}").exists()
    assert "Time" in result.stdout and "dim=3" in result.stdout
    assert "8 records: 8 ok" in result.stderr


def test_default_run_folder_is_results_suite_timestamp_machine(cli, write_suite, tmp_path):
    assert cli("run", write_suite()).exit_code == 0
    (folder,) = (tmp_path / "results" / "tiny").iterdir()
    stamp, machine = folder.name.split("_", 1)
    assert stamp.endswith("Z") and len(stamp) == 16
    assert machine == json.loads((folder / "env.json").read_text())["machine_key"]


def test_second_run_into_a_finished_folder_adds_nothing(cli, write_suite, tmp_path):
    suite = write_suite()
    assert cli("run", suite, "--out", "out").exit_code == 0
    before = (tmp_path / "out" / "records.jsonl").read_bytes()
    result = cli("run", suite, "--out", "out")
    assert result.exit_code == 0
    assert "4 of 4 cases were already done" in result.stderr
    assert (tmp_path / "out" / "records.jsonl").read_bytes() == before


def test_filtered_run_then_resume_completes_without_duplicates(cli, write_suite, tmp_path):
    suite = write_suite()
    assert cli("run", suite, "--out", "out", "--filter", "dim=3").exit_code == 0
    assert len(_records(tmp_path / "out")) == 4
    result = cli("run", suite, "--out", "out")
    assert "2 of 4 cases were already done" in result.stderr
    records = _records(tmp_path / "out")
    assert len(records) == 8
    assert len({(r["case"], r["metric"]) for r in records}) == 8


def test_resume_flag_picks_the_latest_unfinished_run(cli, write_suite, tmp_path):
    suite = write_suite()
    assert cli("run", suite, "--filter", "dim=3").exit_code == 0
    (folder,) = (tmp_path / "results" / "tiny").iterdir()
    result = cli("run", suite, "--resume")
    assert result.exit_code == 0, result.output
    assert f"run folder: {Path('results') / 'tiny' / folder.name}" in result.stderr
    assert len(_records(folder)) == 8
    again = cli("run", suite, "--resume")
    assert again.exit_code == 2 and "no unfinished run" in again.stderr


def test_folder_of_another_suite_is_refused(cli, write_suite, tmp_path):
    assert cli("run", write_suite(), "--out", "out").exit_code == 0
    other = write_suite(BASE_SUITE.replace("name: tiny", "name: other"), name="other.yaml")
    result = cli("run", other, "--out", "out")
    assert result.exit_code == 2
    assert "holds a run of suite 'tiny'" in result.stderr
    changed = write_suite(BASE_SUITE.replace("dim: [3, 4]", "dim: [5]"), name="changed.yaml")
    result = cli("run", changed, "--out", "out")
    assert result.exit_code == 2 and "different version of suite 'tiny'" in result.stderr


def test_non_empty_folder_without_a_run_is_refused(cli, write_suite, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me")
    result = cli("run", write_suite(), "--out", "out")
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert (tmp_path / "out" / "precious.txt").read_text() == "keep me"


def test_dry_run_measures_and_writes_nothing(cli, write_suite, tmp_path):
    result = cli("run", write_suite(), "--out", "out", "--dry-run")
    assert result.exit_code == 0
    assert "4 cases" in result.stdout and "0 done, 4 to do" in result.stdout
    assert not (tmp_path / "out").exists()


def test_validate(cli, write_suite):
    result = cli("validate", write_suite())
    assert result.exit_code == 0
    assert "ok — 4 cases, 2 method configs, metrics: time, forward_error" in result.stdout


def test_plan_marks_done_cases(cli, write_suite):
    suite = write_suite()
    assert cli("run", suite, "--out", "out", "--filter", "method=log").exit_code == 0
    result = cli("plan", suite, "--out", "out")
    assert result.exit_code == 0
    assert "2 done, 2 to do" in result.stdout
    # Without --out, plan looks at the latest run of the suite on this machine.
    assert cli("run", suite, "--filter", "dim=4").exit_code == 0
    result = cli("plan", suite)
    assert "against run folder" in result.stdout and "2 done, 2 to do" in result.stdout


def test_list_shows_every_registry(cli):
    result = cli("list")
    assert result.exit_code == 0
    for word in ("matrix_function", "autograd", "spd", "forward_error", "time", "smoke"):
        assert word in result.stdout
    methods = cli("list", "methods")
    assert "func" in methods.stdout and "spd" not in methods.stdout


def test_show_formats(cli, write_suite, tmp_path):
    assert cli("run", write_suite(), "--out", "out").exit_code == 0
    md = cli("show", "out", "--format", "md")
    assert md.exit_code == 0 and "### Time" in md.stdout and "| method" in md.stdout
    csv = cli("show", "out", "--format", "csv")
    assert csv.stdout.startswith("method,") and "dim=3" in csv.stdout
    latex = cli("show", "out", "--format", "latex")
    assert "\\toprule" in latex.stdout and "\\bottomrule" in latex.stdout
    plain = cli("show", "out")
    assert plain.exit_code == 0 and "Time" in plain.stdout
    bad = cli("show", "out", "--format", "html")
    assert bad.exit_code == 2 and "unknown format 'html'" in bad.stderr


def test_show_uses_edited_tables_without_remeasuring(cli, write_suite, tmp_path):
    assert cli("run", write_suite(), "--out", "out").exit_code == 0
    before = (tmp_path / "out" / "records.jsonl").read_bytes()
    suite_copy = tmp_path / "out" / "suite.yaml"
    suite_copy.write_text(suite_copy.read_text().replace("cols: [dim]", "cols: [method]"))
    result = cli("show", "out", "--format", "md")
    assert "method=log" in result.stdout
    assert (tmp_path / "out" / "records.jsonl").read_bytes() == before


def test_env(cli):
    result = cli("env", "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["torch"] and info["cpu_count"] >= 1
    assert cli("env").exit_code == 0


def test_help_on_every_command(cli):
    for command in (
        "run",
        "validate",
        "plan",
        "list",
        "show",
        "env",
        "reproduce",
        "compare",
        "report",
        "advise",
        "merge",
    ):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_bracketed_method_labels_survive_terminal_tables(cli, write_suite, tmp_path):
    text = BASE_SUITE.replace(
        "func: sqrt, method: autograd", "func: pow, p: [2, 3], method: autograd"
    )
    suite = write_suite(text)
    result = cli("run", suite, "--out", "out")
    assert result.exit_code == 0, result.output
    assert "sqrt[p=2.0]" in result.stdout and "sqrt[p=3.0]" in result.stdout
    assert "sqrt[p=2.0]" in cli("plan", suite, "--out", "out").stdout
    assert "sqrt[p=3.0]" in cli("show", "out").stdout
