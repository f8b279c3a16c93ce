"""Users of the staff tabs (Agent desk, Prompt studio) and their roles.

One JSON file in the data dir (``<data dir>/users.json``, mode 0600, replaced atomically under
a lock): ``{"version": 1, "users": [{"name", "role", "password_hash", "created_at"}]}``.
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

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from assistant.core.errors import ConfigError, InputError

Role = Literal["agent", "ops", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
USERS_FILE = "users.json"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_FORMAT_VERSION = 1


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
    """Users in a JSON file. Every call reads the file afresh, so several processes (the app
    and the CLI) see each other's changes; writes hold an exclusive lock."""

    def __init__(self, path: Path | str, *, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> UserStore:
        return cls(Path(settings.data_dir) / USERS_FILE)

    # ------------------------------------------------------------------ public API
    def add(self, name: str, password: str, role: str) -> User:
        key = normalize_name(name)
        checked_role = check_role(role)
        _check_password(password)
        with self._locked() as users:
            if key in users:
                raise InputError(f"User '{key}' already exists.",
                                 "Pick another name, or remove the user first.")
            user = User(key, checked_role, datetime.now(UTC).isoformat(timespec="seconds"))
            users[key] = {**user.public(), "password_hash": self.hasher.hash(password)}
        return user

    def remove(self, name: str) -> User:
        key = normalize_name(name)
        with self._locked() as users:
            if key not in users:
                raise InputError(f"No user named '{key}'.",
                                 "See the names with: assistant users list")
            return _user(users.pop(key))

    def set_password(self, name: str, password: str) -> User:
        key = normalize_name(name)
        _check_password(password)
        with self._locked() as users:
            if key not in users:
                raise InputError(f"No user named '{key}'.",
                                 "See the names with: assistant users list")
            users[key]["password_hash"] = self.hasher.hash(password)
            return _user(users[key])

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
        with self._locked() as users:
            rec = users.get(key)
            if rec and rec["password_hash"] == old_hash:  # unchanged since we verified
                rec["password_hash"] = self.hasher.hash(password)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"Cannot read the users file {self.path}: {exc.strerror}.",
                              "Check its permissions (it should be readable by the app).") from None
        return self._parse(text)

    def _parse(self, text: str) -> dict[str, dict[str, Any]]:
        broken = ConfigError(f"The users file {self.path} is damaged.",
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
                    and rec["role"] in ROLES):
                raise broken
            users[rec["name"]] = rec
        return users

    @contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write under an exclusive lock; the file is replaced atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            users = self._read()
            yield users
            self._write(users)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, users: dict[str, dict[str, Any]]) -> None:
        payload = {"version": _FORMAT_VERSION, "users": [users[k] for k in sorted(users)]}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _user(rec: dict[str, Any]) -> User:
    return User(name=rec["name"], role=rec["role"], created_at=rec.get("created_at", ""))


def authenticator(store: UserStore, role: str) -> Callable[[str, str], bool]:
    """A Gradio ``auth=`` callable: True when the password matches and the user has ``role``
    (admin always passes)."""
    check_role(role)

    def check(username: str, password: str) -> bool:
        return has_role(store.verify(username, password), role)

    return check
