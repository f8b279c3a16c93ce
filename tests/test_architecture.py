"""The house plan (ARCHITECTURE.md) holds: import-linter's contracts in pyproject.toml pass,
and they cover every package, so a new package cannot sit outside the floors."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from assistant.core.config import REPO_ROOT

PACKAGE = REPO_ROOT / "assistant"


def contracts() -> list[dict]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    # this checkout's package, whatever the virtualenv's editable install points at
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run([str(lint), "--no-cache"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_every_package_and_top_module_is_on_a_floor():
    [floors] = [c for c in contracts() if c["id"] == "floors"]
    named = {name.strip() for layer in floors["layers"]
             for name in layer.replace("|", ":").split(":")}
    present = {p.name for p in PACKAGE.iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    present |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert present == named, f"not on a floor: {present - named}; gone: {named - present}"


def test_architecture_doc_names_every_module():
    """ARCHITECTURE.md's module table stays in step with the code."""
    doc = (REPO_ROOT / "ARCHITECTURE.md").read_text()
    missing = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
               if p.name != "__init__.py" and f"`{p.name}`" not in doc]
    assert not missing, f"ARCHITECTURE.md does not mention: {missing}"


def _imports_in_functions(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            walk(child, in_function
                 or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    walk(tree, False)
    return found


def test_imports_inside_functions_say_why():
    """An import inside a function is an exception (a heavy or optional dependency, the
    CLI's start-up time) and says so on its first line: ``# lazy: <why>``."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in _imports_in_functions(ast.parse(source, filename=str(path))):
            if "# lazy:" not in lines[node.lineno - 1]:
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: "
                                 f"{lines[node.lineno - 1].strip()}")
    assert not offenders, ("imports inside functions without a `# lazy: <why>` comment "
                           "(move them to the top of the module, or say why not):\n"
                           + "\n".join(offenders))
