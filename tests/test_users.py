"""Users and roles: argon2 hashes in a 0600 JSON file, validation, the Gradio auth callable."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from assistant.core.errors import ConfigError, InputError
from assistant.infra.users import ROLES, User, UserStore, authenticator, has_role

# cheap parameters keep the suite fast; one test below checks the real defaults
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse"


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "data" / "users.json", hasher=FAST)


def test_add_verify_and_list(store: UserStore) -> None:
    user = store.add("Alice", PASSWORD, "agent")
    assert user.name == "alice" and user.role == "agent"
    assert store.verify("alice", PASSWORD) == user
    assert store.verify("ALICE ", PASSWORD) == user  # names are case-insensitive
    assert store.verify("alice", "wrong password") is None
    assert store.verify("nobody", PASSWORD) is None
    assert store.verify("", "") is None
    assert store.verify("bad name!", PASSWORD) is None
    store.add("bob", "another secret", "ops")
    assert [u.name for u in store.list()] == ["alice", "bob"]


def test_file_is_private_and_holds_only_hashes(store: UserStore) -> None:
    store.add("alice", PASSWORD, "admin")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    text = store.path.read_text()
    assert PASSWORD not in text
    rec = json.loads(text)["users"][0]
    assert rec["password_hash"].startswith("$argon2id$")
    assert set(rec) == {"name", "role", "created_at", "password_hash"}
    assert not list(store.path.parent.glob("*.tmp"))


def test_real_default_hasher_salts(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")  # argon2-cffi defaults
    store.add("a1", PASSWORD, "agent")
    store.add("a2", PASSWORD, "agent")
    hashes = [r["password_hash"] for r in json.loads(store.path.read_text())["users"]]
    assert hashes[0] != hashes[1]  # same password, different salt
    assert store.verify("a1", PASSWORD) is not None


def test_persisted_across_instances(store: UserStore) -> None:
    store.add("alice", PASSWORD, "ops")
    again = UserStore(store.path, hasher=FAST)
    assert again.verify("alice", PASSWORD) is not None
    again.remove("alice")
    assert store.list() == []  # the first instance re-reads the file


def test_remove(store: UserStore) -> None:
    store.add("alice", PASSWORD, "agent")
    assert store.remove("alice").name == "alice"
    assert store.verify("alice", PASSWORD) is None
    with pytest.raises(InputError, match="No user named 'alice'"):
        store.remove("alice")


@pytest.mark.parametrize(("name", "password", "role", "match"), [
    ("", PASSWORD, "agent", "empty"),
    ("   ", PASSWORD, "agent", "empty"),
    ("al ice", PASSWORD, "agent", "not a valid user name"),
    ("-alice", PASSWORD, "agent", "not a valid user name"),
    ("a" * 65, PASSWORD, "agent", "not a valid user name"),
    ("alice", "short", "agent", "too short"),
    ("alice", "", "agent", "too short"),
    ("alice", "x" * 1025, "agent", "too long"),
    ("alice", PASSWORD, "boss", "Unknown role 'boss'"),
])
def test_bad_input(store: UserStore, name: str, password: str, role: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        store.add(name, password, role)
    assert info.value.hint
    assert not store.path.exists()  # nothing written


def test_duplicate_user(store: UserStore) -> None:
    store.add("alice", PASSWORD, "agent")
    with pytest.raises(InputError, match="already exists"):
        store.add("ALICE", "other password", "admin")
    assert store.get("alice").role == "agent"


def test_roles() -> None:
    agent, ops, admin = (User(r, r, "") for r in ("agent", "ops", "admin"))  # type: ignore[arg-type]
    assert ROLES == ("agent", "ops", "admin")
    assert has_role(agent, "agent") and not has_role(agent, "ops")
    assert has_role(ops, "ops") and not has_role(ops, "agent")  # ops does not imply agent
    assert all(has_role(admin, r) for r in ROLES)
    assert not has_role(None, "agent")
    with pytest.raises(InputError, match="Unknown role"):
        has_role(agent, "root")


def test_authenticator_for_gradio(store: UserStore) -> None:
    store.add("alice", PASSWORD, "agent")
    store.add("olga", PASSWORD, "ops")
    store.add("root", PASSWORD, "admin")
    desk = authenticator(store, "agent")
    assert desk("alice", PASSWORD) is True
    assert desk("alice", "wrong password") is False
    assert desk("olga", PASSWORD) is False  # right password, wrong role
    assert desk("root", PASSWORD) is True
    assert desk("ghost", PASSWORD) is False
    with pytest.raises(InputError):
        authenticator(store, "superuser")


def test_set_password_and_rehash(store: UserStore) -> None:
    store.add("alice", PASSWORD, "agent")
    store.set_password("alice", "a new password")
    assert store.verify("alice", PASSWORD) is None
    assert store.verify("alice", "a new password") is not None
    # stronger parameters later: the next successful login upgrades the stored hash
    stronger = UserStore(store.path, hasher=PasswordHasher(time_cost=2, memory_cost=2048,
                                                           parallelism=1))
    old = json.loads(store.path.read_text())["users"][0]["password_hash"]
    assert stronger.verify("alice", "a new password") is not None
    new = json.loads(store.path.read_text())["users"][0]["password_hash"]
    assert new != old and "t=2" in new


def test_damaged_file(store: UserStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(ConfigError, match="damaged"):
        store.list()
