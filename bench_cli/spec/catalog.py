"""The suites that ship inside the package (bundled and paper suites, found with
importlib.resources so a wheel carries them), and a name or a path to a suite file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from bench_cli.errors import UserError, did_you_mean, unknown_name


def suites_dir() -> Path:
    """The bundled suites, shipped inside the package (importlib.resources)."""
    return Path(str(resources.files("bench_cli") / "suites"))


def bundled_suites() -> dict[str, Path]:
    """Bundled suite files by name (paper suites included)."""
    root = suites_dir()
    if not root.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.yaml")):
        found.setdefault(path.stem, path)
    return found


def paper_suites() -> dict[str, Path]:
    """The suites that reproduce published tables, by name."""
    root = suites_dir() / "paper"
    return {p.stem: p for p in sorted(root.glob("*.yaml"))} if root.is_dir() else {}


def resolve_suite(name_or_path: str | Path) -> Path:
    """A suite file path: an existing path as given, else a bundled suite of that name."""
    path = Path(name_or_path)
    text = str(name_or_path)
    if path.exists() or path.suffix in {".yaml", ".yml"} or "/" in text:
        return path
    bundled = bundled_suites()
    if text not in bundled:
        raise UserError(
            f"{text}: no such suite file, and no bundled suite of that name"
            f"{did_you_mean(text, bundled)}; bundled: {', '.join(bundled)}"
        )
    return bundled[text]


def paper_suite(name: str | Path) -> Path:
    """A paper suite by name, or a suite file given by path."""
    available = paper_suites()
    text = str(name)
    if text in available:
        return available[text]
    if text.endswith((".yaml", ".yml")) or Path(text).exists():
        if not Path(text).is_file():
            raise UserError(f"{text}: suite file not found")
        return Path(text)
    raise UserError(unknown_name("paper suite", text, available))
