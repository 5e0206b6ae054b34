"""YAML with line numbers: every value's key path mapped to its line, so an error
names FILE:LINE: key.path; the loader refuses alias bombs, deep nesting and
duplicate keys."""

from __future__ import annotations

import re
from typing import Any

import yaml

from bench_cli.errors import UserError
from bench_cli.spec.limits import MAX_DEPTH, MAX_YAML_NODES, Loc

# ---------------------------------------------------------------- YAML + lines


class Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 and 1.0e2 as floats (YAML 1.2), not strings."""


# add_implicit_resolver appends to lists shared with SafeLoader: copy them first.
Loader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class Dumper(yaml.SafeDumper):
    """Quotes every string that Loader would read back as another type (e.g. '2e-4')."""


Dumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in Loader.yaml_implicit_resolvers.items()
}


class SuiteError(UserError):
    """A mistake in a suite file, located by file, line and key path."""

    def __init__(self, source: str, line: int | None, loc: Loc, message: str):
        self.source, self.line, self.loc, self.message = source, line, loc, message
        where = f"{source}:{line}" if line else source
        path = format_loc(loc)
        super().__init__(f"{where}: {path + ': ' if path else ''}{message}")


def format_loc(loc: Loc) -> str:
    """A location as the suite shows it, e.g. methods.ns.iters[1]."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], source: str) -> None:
    """Map every key path to its line; refuse non-scalar keys, too many nodes (aliases
    expand here, before anything is built) and too deep a nesting."""
    count = 0
    stack: list[tuple[yaml.Node, Loc]] = [(node, loc)]
    while stack:
        node, loc = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise SuiteError(
                source, None, (), f"the suite expands to more than {MAX_YAML_NODES:,} YAML "
                "nodes (aliases?); a suite is far smaller"
            )  # fmt: skip
        if len(loc) > MAX_DEPTH:
            raise SuiteError(
                source, node.start_mark.line + 1, (), f"nested more than {MAX_DEPTH} levels deep"
            )
        lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise SuiteError(source, line, loc, "a key must be a plain name, not a list")
                key = key_node.value
                if key in seen:
                    raise SuiteError(
                        source, line, loc + (key,), f"duplicate key (first on line {seen[key]})"
                    )
                seen[key] = line
                lines[loc + (key,)] = line
                stack.append((value_node, loc + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, loc + (i,)) for i, item in enumerate(node.value))


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text; return the data and a map from key path to line number."""
    loader = None
    try:
        loader = Loader(text)  # the reader rejects some control characters right here
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        if node is not None:
            _index_lines(node, (), lines, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SuiteError(source, line, (), f"malformed YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise SuiteError(source, None, (), f"malformed YAML: {exc}") from exc
    except RecursionError as exc:
        raise SuiteError(source, None, (), f"nested more than {MAX_DEPTH} levels deep") from exc
    except ValueError as exc:  # int('9' * 5000): Python's digit limit
        raise SuiteError(source, None, (), f"a number with too many digits ({exc})") from exc
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines
