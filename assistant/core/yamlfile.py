"""Reading ops-edited YAML files: syntax errors and pydantic errors point at file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from assistant.core.errors import AssistantError, ConfigError


def read_yaml(path: Path, text: str, *, what: str, error: type[AssistantError],
              hint: str) -> tuple[Any, yaml.Node | None]:
    """(data, node tree) of a YAML text; a syntax error becomes ``error`` naming file:line."""
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{what} {where} is not valid YAML: {problem}.", hint) from None


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location (best effort)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def read_config_file(path: Path, *, what: str, default: str,
                     hint: str = "Fix the YAML at that line (indentation, quotes around text "
                     "with ':' or '#').") -> tuple[Any, yaml.Node | None]:
    """(data, node tree) of an ops-edited config file; an unreadable file or bad YAML is a
    ``ConfigError`` naming the file (and line). ``what``: e.g. "Shop settings";
    ``default``: the default path, quoted in the hint."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read the {what.lower()} {path}: {exc.strerror}.",
                          f"Check the path (the default is {default}).") from None
    return read_yaml(path, text, what=what, error=ConfigError, hint=hint)
