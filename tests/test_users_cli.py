"""`assistant users add/list/remove/passwd` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.infra.store import Store
from assistant.infra.users import UserStore

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def _add(name: str, role: str, password: str = "s3cret-pass"):
    return runner.invoke(app, ["users", "add", name, "--role", role, "--password-stdin"],
                         input=password + "\n")


def test_add_list_remove(data_dir: Path) -> None:
    result = _add("alice", "agent")
    assert result.exit_code == 0, result.output
    assert "added alice (agent)" in result.output
    assert _add("olga", "ops").exit_code == 0

    listed = runner.invoke(app, ["users", "list", "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.output)
    assert [(r["name"], r["role"]) for r in rows] == [("alice", "agent"), ("olga", "ops")]
    assert "hash" not in listed.output and "argon2" not in listed.output

    plain = runner.invoke(app, ["users", "list"])
    assert "alice" in plain.output and "argon2" not in plain.output

    store = UserStore(Store(data_dir / "tailor.sqlite3"))
    assert store.verify("alice", "s3cret-pass") is not None  # newline not part of it

    removed = runner.invoke(app, ["users", "remove", "alice"])
    assert removed.exit_code == 0 and "removed alice" in removed.output
    assert [u.name for u in store.list()] == ["olga"]


def test_prompt_asks_twice(data_dir: Path) -> None:
    result = runner.invoke(app, ["users", "add", "bob", "--role", "admin"],
                           input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert "s3cret-pass" not in result.output  # hidden input
    assert UserStore(Store(data_dir / "tailor.sqlite3")).verify("bob",
                                                                "s3cret-pass").role == "admin"


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["users", "add", "alice", "--role", "boss", "--password-stdin"], "s3cret-pass\n",
     "Unknown role 'boss'"),
    (["users", "add", "alice", "--role", "agent", "--password-stdin"], "short\n", "too short"),
    (["users", "add", "a lice", "--password-stdin"], "s3cret-pass\n", "not a valid user name"),
    (["users", "remove", "ghost"], "", "No user named 'ghost'"),
    (["users", "passwd", "ghost", "--password-stdin"], "s3cret-pass\n", "No user named"),
])
def test_bad_input_exits_2(data_dir: Path, args: list[str], stdin: str, message: str) -> None:
    result = runner.invoke(app, args, input=stdin)
    assert result.exit_code == 2
    assert message in result.output
    assert "hint:" in result.output
    assert "Traceback" not in result.output


def test_duplicate_and_passwd(data_dir: Path) -> None:
    assert _add("alice", "agent").exit_code == 0
    again = _add("alice", "ops")
    assert again.exit_code == 2 and "already exists" in again.output
    changed = runner.invoke(app, ["users", "passwd", "alice", "--password-stdin"],
                            input="brand-new-pass\n")
    assert changed.exit_code == 0, changed.output
    store = UserStore(Store(data_dir / "tailor.sqlite3"))
    assert store.verify("alice", "brand-new-pass") is not None
    assert store.verify("alice", "s3cret-pass") is None
