"""The package's structure, checked with tools: no import cycle anywhere in bench_cli
(grimp, the graph import-linter builds; `make lint` runs the import-linter contracts in
pyproject.toml, and a test here shows they break on an upward import)."""

from __future__ import annotations

import grimp


def import_cycles(package: str) -> list[list[str]]:
    """The strongly connected groups of more than one module in the package's import
    graph (every import statement, function-level ones included)."""
    graph = grimp.build_graph(package)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_bench_cli_has_no_import_cycle():
    assert import_cycles("bench_cli") == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    """It can fail: two modules that import each other are one cycle."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("def f():\n    from cyclic import a\n")
    (package / "c.py").write_text("from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclic") == [["cyclic.a", "cyclic.b"]]


LINT = (
    "import sys\n"
    "sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
    "sys.path.insert(0, '.')\n"
    "from importlinter.cli import lint_imports\n"
    "sys.exit(lint_imports())\n"
)


def test_the_contracts_fail_on_an_upward_import(tmp_path):
    """They can fail: a copy of the package whose layers import the API, and whose
    command line imports the runner, breaks the layers contract and the CLI's."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(root / "bench_cli", tmp_path / "bench_cli", ignore=skip)
    shutil.copy(root / "pyproject.toml", tmp_path)
    checks = tmp_path / "bench_cli" / "layers" / "_checks.py"
    checks.write_text(checks.read_text() + "\nfrom bench_cli import api  # noqa: E402\n")
    console = tmp_path / "bench_cli" / "cli" / "console.py"
    console.write_text(console.read_text() + "\nfrom bench_cli.runner import loop  # noqa\n")
    done = subprocess.run(
        [sys.executable, "-c", LINT], cwd=tmp_path, capture_output=True, text=True
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "every import points down BROKEN" in out
    assert "pure PyTorch: they import nothing else of matbench BROKEN" in out
    assert "bench_cli.cli.console -> bench_cli.runner.loop" in out
    assert "bench_cli.layers._checks -> bench_cli.api" in out
