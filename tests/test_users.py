"""Users and roles: argon2 hashes in the store, the import of the old users.json, validation,
the Gradio auth callable."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from assistant.core.errors import ConfigError, InputError
from assistant.infra.store import Store
from assistant.infra.users import ROLES, USERS_FILE, User, UserStore, authenticator, has_role

# cheap parameters keep the suite fast; one test below checks the real defaults
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse"


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    return UserStore(Store(tmp_path / "t.sqlite3"), hasher=FAST)


def _legacy_file(path: Path, users: list[dict[str, str]]) -> Path:
    """A users.json in the old format (what UserStore wrote before the store held users)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "users": users}, indent=2))
    return path


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


def test_store_holds_only_hashes(store: UserStore) -> None:
    store.add("alice", PASSWORD, "admin")
    rec = store.store.users()["alice"]
    assert PASSWORD not in json.dumps(rec)
    assert rec["password_hash"].startswith("$argon2id$")
    assert set(rec) == {"name", "role", "created_at", "password_hash"}
    assert not store.store.path.with_name(USERS_FILE).exists()  # no JSON file any more


def test_real_default_hasher_salts(tmp_path: Path) -> None:
    store = UserStore(Store(tmp_path / "t.sqlite3"))  # argon2-cffi defaults
    store.add("a1", PASSWORD, "agent")
    store.add("a2", PASSWORD, "agent")
    hashes = [r["password_hash"] for r in store.store.users().values()]
    assert hashes[0] != hashes[1]  # same password, different salt
    assert store.verify("a1", PASSWORD) is not None


def test_persisted_across_instances(store: UserStore) -> None:
    store.add("alice", PASSWORD, "ops")
    again = UserStore(store.store, hasher=FAST)
    assert again.verify("alice", PASSWORD) is not None
    again.remove("alice")
    assert store.list() == []  # the first instance re-reads the table


def test_two_stores_on_one_file_see_each_others_changes(tmp_path: Path) -> None:
    # two processes in production: each opens the database itself
    first = UserStore(Store(tmp_path / "t.sqlite3"), hasher=FAST)
    second = UserStore(Store(tmp_path / "t.sqlite3"), hasher=FAST)
    first.add("alice", PASSWORD, "agent")
    assert second.verify("alice", PASSWORD) is not None
    second.set_password("alice", "a new password")
    assert first.verify("alice", "a new password") is not None
    second.add("bob", PASSWORD, "ops")
    assert [u.name for u in first.list()] == ["alice", "bob"]
    first.remove("bob")
    assert second.get("bob") is None
    with pytest.raises(InputError, match="already exists"):
        second.add("alice", PASSWORD, "admin")


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
    assert store.store.users() == {}  # nothing written


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
    stronger = UserStore(store.store, hasher=PasswordHasher(time_cost=2, memory_cost=2048,
                                                            parallelism=1))
    old = store.store.users()["alice"]["password_hash"]
    assert stronger.verify("alice", "a new password") is not None
    new = store.store.users()["alice"]["password_hash"]
    assert new != old and "t=2" in new


def test_old_users_file_is_imported_on_first_use(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    legacy = _legacy_file(tmp_path / "data" / USERS_FILE, [
        {"name": "alice", "role": "agent", "password_hash": FAST.hash(PASSWORD),
         "created_at": "2024-05-01T10:00:00+00:00"},
        {"name": "root", "role": "admin", "password_hash": FAST.hash("another secret"),
         "created_at": "2024-05-02T10:00:00+00:00"},
    ])
    before = legacy.read_text()
    users = UserStore(Store(tmp_path / "t.sqlite3"), legacy_file=legacy, hasher=FAST)
    with caplog.at_level(logging.INFO, logger="assistant.infra.users"):
        assert users.verify("alice", PASSWORD) is not None  # the hash came along
    assert "imported 2 user(s)" in caplog.text and str(legacy) in caplog.text
    assert users.verify("root", "another secret").role == "admin"
    assert users.get("alice").created_at == "2024-05-01T10:00:00+00:00"
    assert [u.name for u in users.list()] == ["alice", "root"]
    # the file stays as a backup, untouched, and is ignored from now on
    users.add("bob", PASSWORD, "ops")
    users.remove("root")
    assert legacy.read_text() == before
    again = UserStore(Store(tmp_path / "t.sqlite3"), legacy_file=legacy, hasher=FAST)
    assert [u.name for u in again.list()] == ["alice", "bob"]  # root is not imported again


def test_old_users_file_not_imported_when_the_store_has_users(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite3"
    UserStore(Store(db), hasher=FAST).add("olga", PASSWORD, "ops")
    legacy = _legacy_file(tmp_path / USERS_FILE, [
        {"name": "alice", "role": "agent", "password_hash": FAST.hash(PASSWORD),
         "created_at": "2024-05-01T10:00:00+00:00"}])
    users = UserStore(Store(db), legacy_file=legacy, hasher=FAST)
    assert [u.name for u in users.list()] == ["olga"]
    assert users.verify("alice", PASSWORD) is None


def test_damaged_file(tmp_path: Path) -> None:
    legacy = tmp_path / "data" / USERS_FILE
    legacy.parent.mkdir(parents=True)
    for text in ("{not json", '{"version": 1}',
                 '{"version": 1, "users": [{"name": "alice", "role": "boss", '
                 '"password_hash": "x"}]}'):
        legacy.write_text(text)
        users = UserStore(Store(tmp_path / "t.sqlite3"), legacy_file=legacy, hasher=FAST)
        with pytest.raises(ConfigError, match="damaged") as info:
            users.list()
        assert str(legacy) in str(info.value) and info.value.hint
    assert users.store.users() == {}  # nothing imported
