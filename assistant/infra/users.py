"""Users of the staff tabs (Agent desk, Prompt studio) and their roles.

Users live in the store's ``users`` table (``Store.users`` / ``Store.change_users``: one
read-modify-write under a lock), so every app process and the CLI share them; columns name,
role, password_hash, created_at.

Before this, users were in a JSON file in the data dir (``<data dir>/users.json``:
``{"version": 1, "users": [{"name", "role", "password_hash", "created_at"}]}``). On first
use, when the store has no users yet and that file exists, its records are imported as they
are (hashes included, so passwords keep working), once, and an INFO line says how many. The
file is left in place as a backup; it is never written again and ignored after the import.

Passwords are salted argon2id hashes from argon2-cffi's ``PasswordHasher`` (its RFC 9106
defaults); a hash made with older parameters is upgraded at the next successful login.

Roles: ``agent`` (Agent desk), ``ops`` (Prompt studio, Segments), ``admin`` (everything).
``admin`` implies every role; ``ops`` does not imply ``agent`` (ops staff edit templates, they
do not answer customers, and the desk shows customers' personal data). Give a person who does
both jobs the ``admin`` role, or two accounts.

Names are case-insensitive (stored lower-case): 1-64 characters from letters, digits and
``._@-``, starting with a letter or digit. Passwords: 8-1024 characters.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from assistant.core.errors import ConfigError, InputError
from assistant.infra.store import Store

log = logging.getLogger(__name__)

Role = Literal["agent", "ops", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
USERS_FILE = "users.json"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created_at: str

    def public(self) -> dict[str, str]:
        """What may be shown or sent anywhere (never the hash)."""
        return {"name": self.name, "role": self.role, "created_at": self.created_at}


def has_role(user: User | None, role: str) -> bool:
    """True when ``user`` may act as ``role``: admin implies every role, the others only
    themselves."""
    check_role(role)
    return user is not None and (user.role == role or user.role == "admin")


def normalize_name(name: str) -> str:
    """The stored form of a user name; InputError when it is empty or odd."""
    clean = (name or "").strip().lower()
    if not clean:
        raise InputError("The user name is empty.", "Give a name, e.g. 'alice'.")
    if not _NAME.match(clean):
        raise InputError(
            f"'{name}' is not a valid user name.",
            "Use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit.",
        )
    return clean


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InputError(f"Unknown role '{role}'.", f"Use one of: {', '.join(ROLES)}.")
    return role  # type: ignore[return-value]


def _check_password(password: str) -> None:
    if not password or len(password) < MIN_PASSWORD:
        raise InputError(f"The password is too short (minimum {MIN_PASSWORD} characters).",
                         "Choose a longer password; a passphrase of a few words is best.")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"The password is too long (maximum {MAX_PASSWORD} characters).",
                         "Choose a shorter password.")


class UserStore:
    """Users in the store. Every call reads the table afresh, so several processes (the app
    and the CLI) see each other's changes; writes are one read-modify-write under a lock.
    ``legacy_file``: an old ``users.json`` to import on first use (see the module doc)."""

    def __init__(self, store: Store, *, legacy_file: Path | None = None,
                 hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.legacy_file = Path(legacy_file) if legacy_file is not None else None
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._legacy_checked = False

    @classmethod
    def from_settings(cls, settings: Any, store: Store | None = None) -> UserStore:
        """The users of the settings' store (``store``: that store, already open)."""
        return cls(store or Store.from_settings(settings),
                   legacy_file=Path(settings.data_dir) / USERS_FILE)

    # ------------------------------------------------------------------ public API
    def add(self, name: str, password: str, role: str) -> User:
        key = normalize_name(name)
        checked_role = check_role(role)
        _check_password(password)
        password_hash = self.hasher.hash(password)  # slow: not inside the lock

        def change(users: dict[str, dict[str, Any]]) -> User:
            if key in users:
                raise InputError(f"User '{key}' already exists.",
                                 "Pick another name, or remove the user first.")
            user = User(key, checked_role, datetime.now(UTC).isoformat(timespec="seconds"))
            users[key] = {**user.public(), "password_hash": password_hash}
            return user

        return self._change(change)

    def remove(self, name: str) -> User:
        key = normalize_name(name)

        def change(users: dict[str, dict[str, Any]]) -> User:
            if key not in users:
                raise InputError(f"No user named '{key}'.",
                                 "See the names with: assistant users list")
            return _user(users.pop(key))

        return self._change(change)

    def set_password(self, name: str, password: str) -> User:
        key = normalize_name(name)
        _check_password(password)
        password_hash = self.hasher.hash(password)

        def change(users: dict[str, dict[str, Any]]) -> User:
            if key not in users:
                raise InputError(f"No user named '{key}'.",
                                 "See the names with: assistant users list")
            users[key]["password_hash"] = password_hash
            return _user(users[key])

        return self._change(change)

    def list(self) -> list[User]:
        return [_user(rec) for _, rec in sorted(self._read().items())]

    def get(self, name: str) -> User | None:
        try:
            key = normalize_name(name)
        except InputError:
            return None
        rec = self._read().get(key)
        return _user(rec) if rec else None

    def verify(self, name: str, password: str) -> User | None:
        """The user when name and password match, else None. An unknown name costs one hash
        verification too, so timing does not tell which names exist."""
        try:
            key = normalize_name(name)
        except InputError:
            key = ""
        rec = self._read().get(key) if key else None
        stored = rec["password_hash"] if rec else self._dummy()
        try:
            self.hasher.verify(stored, password or "")
        except (VerificationError, InvalidHashError):
            return None
        if rec is None:
            return None
        if self.hasher.check_needs_rehash(stored):
            self._rehash(key, stored, password)
        return _user(rec)

    # ------------------------------------------------------------------ internals
    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(os.urandom(16).hex())
        return self._dummy_hash

    def _rehash(self, key: str, old_hash: str, password: str) -> None:
        new_hash = self.hasher.hash(password)

        def change(users: dict[str, dict[str, Any]]) -> None:
            rec = users.get(key)
            if rec and rec["password_hash"] == old_hash:  # unchanged since we verified
                rec["password_hash"] = new_hash

        self._change(change)

    def _read(self) -> dict[str, dict[str, Any]]:
        self._import_legacy()
        return self.store.users()

    def _change(self, change: Callable[[dict[str, dict[str, Any]]], Any]) -> Any:
        """Read-modify-write in the store; an error raised by ``change`` writes nothing."""
        self._import_legacy()
        return self.store.change_users(change)

    def _import_legacy(self) -> None:
        """Once per object: copy the records of the old users file into the store while the
        store has no users (the file stays, as a backup, and is ignored afterwards)."""
        if self._legacy_checked:
            return
        path = self.legacy_file
        if path is None or not path.exists() or self.store.users():
            self._legacy_checked = True
            return
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"Cannot read the users file {path}: {exc.strerror}.",
                              "Check its permissions (it should be readable by the app).") from None
        records = self._parse(text)

        def fill(users: dict[str, dict[str, Any]]) -> int:
            if users:  # another process imported (or added someone) first
                return 0
            for name, rec in records.items():
                users[name] = {"name": name, "role": rec["role"],
                               "password_hash": rec["password_hash"],
                               "created_at": str(rec.get("created_at") or "")}
            return len(records)

        imported = self.store.change_users(fill)
        self._legacy_checked = True
        if imported:
            log.info("imported %d user(s) from %s into the store (the file is no longer used)",
                     imported, path)

    def _parse(self, text: str) -> dict[str, dict[str, Any]]:
        broken = ConfigError(f"The users file {self.legacy_file} is damaged.",
                             "Restore it from a backup, or move it away and add the users again "
                             "with: assistant users add NAME --role ROLE")
        try:
            data = json.loads(text)
        except ValueError:
            raise broken from None
        rows = data.get("users") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise broken
        users: dict[str, dict[str, Any]] = {}
        for rec in rows:
            if not (isinstance(rec, dict) and {"name", "role", "password_hash"} <= rec.keys()
                    and rec["role"] in ROLES and isinstance(rec["name"], str)
                    and isinstance(rec["password_hash"], str)):
                raise broken
            users[rec["name"]] = rec
        return users


def _user(rec: dict[str, Any]) -> User:
    return User(name=rec["name"], role=rec["role"], created_at=rec.get("created_at", ""))


def authenticator(store: UserStore, role: str) -> Callable[[str, str], bool]:
    """A Gradio ``auth=`` callable: True when the password matches and the user has ``role``
    (admin always passes)."""
    check_role(role)

    def check(username: str, password: str) -> bool:
        return has_role(store.verify(username, password), role)

    return check
