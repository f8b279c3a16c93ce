"""The store: chat sessions and messages, the LLM call log, feedback, drafts, template
versions, events, experiments, on SQLAlchemy Core.

Two engines: the embedded SQLite file (the default) and PostgreSQL (psycopg 3) when
``TAILOR_DATABASE_URL`` is set, for several app processes. The schema is made and upgraded
by Alembic (``assistant/infra/migrations``) when a ``Store`` opens: forward-only, in one
transaction under one lock (SQLite's write lock, a PostgreSQL advisory lock), so two
processes starting at once migrate once and an interrupted upgrade leaves nothing half done.
An SQLite file of an earlier Tailor is first brought up by its own frozen steps
(``migrations/legacy.py``). The tables are described in ``tables.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from assistant.core.errors import StoreError
from assistant.core.schemas import ChatMessage, LLMCall, Session
from assistant.infra import tables as t
from assistant.infra.migrations import legacy

if TYPE_CHECKING:
    from assistant.core.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: the PostgreSQL advisory lock held while migrating (any constant; "tailor" in ASCII)
MIGRATION_LOCK = 0x7461696C6F72

#: the event log's columns after ``id`` (``add_events`` takes dicts with these keys)
EVENT_COLUMNS = ("at", "kind", "session_id", "customer_id", "segment", "item", "position",
                 "variant", "template_version", "value")


def _now(*, precise: bool = False) -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds" if precise else "milliseconds")


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


@cache
def head_revision() -> str:
    """The newest migration this Tailor has."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _lock_key(name: str) -> int:
    """A PostgreSQL advisory-lock key (signed 64 bits) for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def database_url(location: Path | str) -> URL:
    """The SQLAlchemy URL of a store location: a path (an SQLite file), or a
    ``postgresql://`` / ``sqlite:///`` URL. Raises ``StoreError`` naming
    ``TAILOR_DATABASE_URL`` (never with its password) when it is not usable."""
    if isinstance(location, Path) or "://" not in location:
        return URL.create("sqlite+pysqlite", database=str(location))
    hint = ("Set TAILOR_DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DATABASE, or "
            "unset it to use the embedded SQLite file.")
    try:
        url = make_url(location)
    except (ArgumentError, ValueError):
        scheme = location.split("://", 1)[0]
        raise StoreError(f"TAILOR_DATABASE_URL is not a database URL (it starts with "
                         f"'{scheme}://' but the rest cannot be read).", hint) from None
    if url.get_backend_name() in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database:
        return url.set(drivername="sqlite+pysqlite")
    raise StoreError(f"TAILOR_DATABASE_URL names '{url.drivername}', which Tailor does not "
                     "support (PostgreSQL or SQLite only).", hint)


#: what a server says when waiting will not help (libpq's English messages; a server that
#: speaks another language is retried until the timeout, which is only slower)
PERMANENT = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
             "permission denied")


def _worth_retrying(exc: BaseException) -> bool:
    """A connection problem that may pass (the server starting, the network), not a wrong
    password, user or database name."""
    return isinstance(exc, OperationalError) and not any(
        words in str(exc) for words in PERMANENT)


def _plain(row: Any) -> dict[str, Any]:
    """A result row as a plain dict: SQLAlchemy's keys are a ``str`` subclass, which some
    JSON encoders (orjson, under Gradio's API) refuse."""
    return {str(k): v for k, v in row.items()}


def _reason(exc: BaseException) -> str:
    """The driver's own message, first line, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


class Store:
    """All relational access. ``Store(location)`` opens an SQLite file (a path) or a
    database URL, and brings the schema up to date."""

    def __init__(self, location: Path | str, *, connect_timeout: float = 60.0) -> None:
        self.url = database_url(location)
        self.sqlite = self.url.get_backend_name() == "sqlite"
        #: the SQLite file (None on PostgreSQL)
        self.path: Path | None = Path(self.url.database) if self.sqlite else None
        #: where the data is, safe to print (no password)
        self.where = str(self.path) if self.sqlite else self.url.render_as_string(
            hide_password=True)
        self.engine = self._create_engine()
        try:
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open(connect_timeout)
        except StoreError:
            self.engine.dispose()
            raise

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.database, connect_timeout=settings.database_connect_timeout)

    def _create_engine(self) -> Engine:
        if not self.sqlite:
            # pre-ping: a connection the server dropped (restart, failover) is replaced
            # before use instead of failing the request
            return create_engine(self.url, pool_size=10, max_overflow=20, pool_pre_ping=True,
                                 pool_recycle=1800)
        engine = create_engine(self.url, pool_size=20, max_overflow=-1,
                               connect_args={"timeout": 10, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _setup(dbapi_connection: Any, _record: Any) -> None:
            # transactions are begun by the "begin" hook below, so a write transaction can
            # take the write lock at its start (BEGIN IMMEDIATE)
            dbapi_connection.isolation_level = None
            for pragma in ("foreign_keys = ON",
                           # WAL (set in _open) with NORMAL sync: a commit survives a killed
                           # process; a power cut may lose the last commits
                           "synchronous = NORMAL",
                           # deleted rows are overwritten with zeros: an erased conversation
                           # is not left in free pages of the file
                           "secure_delete = ON"):
                dbapi_connection.execute(f"PRAGMA {pragma}")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("immediate")
            # on the driver's connection: a statement through SQLAlchemy costs more
            conn.connection.driver_connection.execute(
                "BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _open(self, timeout: float) -> None:
        """Migrate, retrying with backoff while the database server is unreachable."""
        if self.sqlite:
            try:
                self.migrate()
            except (DBAPIError, sqlite3.DatabaseError) as exc:
                raise StoreError(
                    f"Cannot open the database {self.path}: {_reason(exc)}",
                    "Check that TAILOR_DATA_DIR is writable and the file is a Tailor SQLite "
                    "database (move a damaged file aside; a new one is created).") from exc
            return
        try:
            for attempt in Retrying(
                    stop=stop_after_delay(timeout), reraise=True,
                    wait=wait_exponential(multiplier=0.5, max=8),
                    retry=retry_if_exception(_worth_retrying),
                    before_sleep=self._log_retry):
                with attempt:
                    self.migrate()
        except OperationalError as exc:
            waited = f" after {timeout:.0f} s" if _worth_retrying(exc) else ""
            raise StoreError(
                f"Cannot reach the database TAILOR_DATABASE_URL={self.where}{waited}: "
                f"{_reason(exc)}",
                "Check that the server is running and that the host, port, user, password "
                "and database name in TAILOR_DATABASE_URL are right.") from exc
        except DBAPIError as exc:
            raise StoreError(f"The database TAILOR_DATABASE_URL={self.where} refused Tailor: "
                             f"{_reason(exc)}",
                             "Check the user's rights on that database.") from exc

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("the database %s is not reachable (%s); retrying in %.1f s", self.where,
                    _reason(exc) if exc else "?", state.upcoming_sleep)

    def close(self) -> None:
        """Close the pooled connections (the next call opens new ones)."""
        self.engine.dispose()

    @contextmanager
    def connect(self, *, immediate: bool = False) -> Iterator[Connection]:
        """One transaction, committed at the end and rolled back on an error. A database
        that fails (down, lost mid-request) raises ``StoreError``: nothing is half
        written. ``immediate``: on SQLite, take the write lock at the start."""
        try:
            with self.engine.connect() as conn:
                if immediate:
                    conn.execution_options(immediate=True)
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            if isinstance(exc, IntegrityError):
                raise StoreError(f"The database refused a change: {_reason(exc)}",
                                 "Nothing was saved; this is a bug if it repeats.") from exc
            raise StoreError(
                f"The database is not available ({_reason(exc)}); nothing was saved.",
                "Try again in a moment. If it lasts, check the database server "
                "(TAILOR_DATABASE_URL) or the disk holding TAILOR_DATA_DIR.") from exc

    # -- migrations ---------------------------------------------------------------
    def revision(self) -> str | None:
        """The schema's migration revision (None: not made yet)."""
        with self.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def migrate(self) -> int:
        """Bring the schema to the newest revision; return how many steps ran (legacy
        SQLite steps included). Safe to run from several processes at once: one migrates
        while the others wait, then find nothing to do."""
        ran = 0
        legacy_step = legacy.legacy_step(self.path) if self.path is not None else None
        if legacy_step is not None:
            if legacy_step > len(legacy.STEPS):
                raise self._too_new(f"legacy schema version {legacy_step}")
            ran += legacy.upgrade_legacy(self.path)
        if self.sqlite:
            raw = self.engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA journal_mode = WAL")
            finally:
                raw.close()
        with self.engine.connect() as conn:
            conn.execution_options(immediate=True)
            with conn.begin():
                if not self.sqlite:  # the other processes wait here
                    conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                current = MigrationContext.configure(conn).get_current_revision()
                if current == head_revision():
                    return ran
                cfg = _alembic_config()
                cfg.attributes["connection"] = conn
                if current is None and inspect(conn).has_table("schema_migrations"):
                    command.stamp(cfg, "0001")  # a legacy file at step 11 is the baseline
                    current = "0001"
                script = ScriptDirectory.from_config(cfg)
                try:
                    pending = list(script.iterate_revisions(head_revision(), current))
                except (CommandError, RevisionError) as exc:
                    raise self._too_new(f"revision {current}") from exc
                command.upgrade(cfg, "head")
        return ran + len(pending)

    def _too_new(self, what: str) -> StoreError:
        return StoreError(f"The database {self.where} has {what}, newer than this Tailor "
                          f"({head_revision()}).",
                          "Upgrade Tailor, or point TAILOR_DATA_DIR / TAILOR_DATABASE_URL "
                          "at another database.")

    def _upsert(self, conn: Connection, table: Any, values: dict[str, Any],
                keys: tuple[str, ...]) -> None:
        """Insert a row, or update every other column of the row with the same keys."""
        build = sqlite_insert if self.sqlite else postgresql_insert
        stmt = build(table).values(**values)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={c: stmt.excluded[c] for c in values if c not in keys}))

    @contextmanager
    def _read(self, timeout: float) -> Iterator[Connection]:
        """A read with its own wait limit (the running app reads with a short one, so a
        locked database never stalls a reply)."""
        with self.connect() as conn:
            millis = int(timeout * 1000)
            if self.sqlite:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {millis}")
                try:
                    yield conn
                finally:
                    conn.exec_driver_sql("PRAGMA busy_timeout = 10000")
            else:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {millis}")
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(millis, 1000)}")
                yield conn

    @contextmanager
    def _exclusive(self, name: str) -> Iterator[Connection]:
        """One write transaction that no other writer of ``name`` interleaves with
        (read-check-write sequences): SQLite's write lock from the start, a PostgreSQL
        advisory lock on the name."""
        with self.connect(immediate=True) as conn:
            if not self.sqlite:
                conn.execute(select(func.pg_advisory_xact_lock(_lock_key(name))))
            yield conn

    # -- sessions and messages ----------------------------------------------------
    def create_session(self) -> Session:
        sid = uuid.uuid4().hex
        now = _now()
        with self.connect() as conn:
            conn.execute(insert(t.sessions).values(id=sid, created_at=now, updated_at=now))
        return Session(id=sid, created_at=now, updated_at=now)

    def get_session(self, session_id: str) -> Session | None:
        with self.connect() as conn:
            row = conn.execute(select(t.sessions).where(t.sessions.c.id == session_id)
                               ).mappings().first()
        return Session(**_plain(row)) if row else None

    def add_message(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        status: str = "ok",
        llm_call_id: int | None = None,
    ) -> ChatMessage:
        now = _now()
        with self.connect() as conn:
            mid = conn.execute(insert(t.messages).values(
                session_id=session_id, role=role, content=content, status=status,
                llm_call_id=llm_call_id, created_at=now)).inserted_primary_key[0]
            conn.execute(update(t.sessions).where(t.sessions.c.id == session_id)
                         .values(updated_at=now))
        return ChatMessage(
            id=mid, session_id=session_id, role=role, content=content, status=status,
            created_at=now,
        )

    @staticmethod
    def _latest_vote(message_id: Any) -> Any:
        """The latest thumbs value of a message (a correlated scalar subquery)."""
        f = t.feedback
        return (select(f.c.value).where(f.c.message_id == message_id)
                .order_by(f.c.id.desc()).limit(1).scalar_subquery())

    def messages(self, session_id: str) -> list[ChatMessage]:
        """The visible conversation: superseded replies (regenerated) are left out."""
        m = t.messages
        stmt = (select(m.c.id, m.c.session_id, m.c.role, m.c.content, m.c.status,
                       m.c.created_at, self._latest_vote(m.c.id).label("feedback"))
                .where(m.c.session_id == session_id, m.c.superseded == 0).order_by(m.c.id))
        with self.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [ChatMessage(**_plain(r)) for r in rows]

    def supersede(self, message_id: int) -> None:
        with self.connect() as conn:
            conn.execute(update(t.messages).where(t.messages.c.id == message_id)
                         .values(superseded=1))

    # -- questionnaire --------------------------------------------------------------
    def load_questionnaire(self, session_id: str) -> str | None:
        q = t.questionnaire_states
        with self.connect() as conn:
            return conn.execute(select(q.c.state).where(q.c.session_id == session_id)
                                ).scalar_one_or_none()

    def save_questionnaire(self, session_id: str, state_json: str) -> None:
        with self.connect() as conn:
            self._upsert(conn, t.questionnaire_states,
                         {"session_id": session_id, "state": state_json,
                          "updated_at": _now()}, ("session_id",))

    # -- profiles -------------------------------------------------------------------
    def save_profile(self, session_id: str, *, document: str, facts: dict,
                     customer_id: str | None, segment: str | None,
                     behaviour: dict | None) -> None:
        with self.connect() as conn:
            self._upsert(conn, t.profiles, {
                "session_id": session_id, "customer_id": customer_id, "segment": segment,
                "document": document, "facts": json.dumps(facts, default=str),
                "behaviour": (json.dumps(behaviour, default=str)
                              if behaviour is not None else None),
                "updated_at": _now()}, ("session_id",))

    @staticmethod
    def _profile(row: Any) -> dict:
        out = _plain(row)
        out["facts"] = json.loads(out["facts"])
        out["behaviour"] = json.loads(out["behaviour"]) if out["behaviour"] else None
        return out

    def load_profile(self, session_id: str) -> dict | None:
        with self.connect() as conn:
            row = conn.execute(select(t.profiles).where(t.profiles.c.session_id == session_id)
                               ).mappings().first()
        return self._profile(row) if row else None

    def add_item_feedback(self, session_id: str, item: str, value: str) -> None:
        with self.connect() as conn:
            conn.execute(insert(t.item_feedback).values(
                session_id=session_id, item=item, value=value, created_at=_now()))

    def item_feedback(self, session_id: str) -> dict[str, str]:
        """The latest reaction per item of a session."""
        i = t.item_feedback
        with self.connect() as conn:
            rows = conn.execute(select(i.c.item, i.c.value).where(i.c.session_id == session_id)
                                .order_by(i.c.id)).all()
        return {item: value for item, value in rows}

    # -- the event log (service/events.py) ---------------------------------------------
    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Append events (dicts with ``EVENT_COLUMNS`` keys; ``at`` defaults to now)."""
        if not events:
            return
        now = _now()
        rows = [{c: e.get(c, now if c == "at" else None) for c in EVENT_COLUMNS}
                for e in events]
        try:
            with self.connect() as conn:
                conn.execute(insert(t.events), rows)
        except StoreError as exc:
            raise StoreError(f"Cannot log {len(rows)} event(s): {exc.message}",
                             "Check that the disk holding TAILOR_DATA_DIR has room, or the "
                             "database server (TAILOR_DATABASE_URL).") from exc

    def events(self, *, kinds: tuple[str, ...] = (), since: str | None = None,
               until: str | None = None) -> list[dict[str, Any]]:
        """Events in the order they were logged, of these kinds (all when empty), logged
        at or after ``since`` and before ``until`` (ISO times)."""
        e = t.events
        stmt = select(e).order_by(e.c.id)
        if kinds:
            stmt = stmt.where(e.c.kind.in_(kinds))
        if since:
            stmt = stmt.where(e.c.at >= since)
        if until:
            stmt = stmt.where(e.c.at < until)
        with self.connect() as conn:
            return [_plain(r) for r in conn.execute(stmt).mappings()]

    # -- experiments (service/experiments.py) -------------------------------------------
    @staticmethod
    def _experiment(row: Any) -> dict[str, Any]:
        out = _plain(row)
        out["arms"] = json.loads(out["arms"])
        return out

    def add_experiment(self, *, name: str, arms: dict[str, str], metric: str,
                       base_rate: float, mde: float, planned: int, share: float,
                       actor: str, kind: str = "recommender",
                       segment: str | None = None) -> None:
        x = t.experiments
        with self.connect() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(x).values(
                        name=name, kind=kind, segment=segment, arms=json.dumps(arms),
                        metric=metric, base_rate=base_rate, mde=mde, planned=planned,
                        share=share, status="running", started_at=_now(), started_by=actor))
            except IntegrityError as exc:
                raise StoreError(f"The experiment '{name}' cannot start: {_reason(exc)}.",
                                 "Another experiment of this kind is running, or the name "
                                 "was used.") from exc

    def stop_experiment(self, name: str, *, actor: str, reason: str = "") -> bool:
        """Stop a running experiment; False when it was not running."""
        x = t.experiments
        with self.connect() as conn:
            return conn.execute(
                update(x).where(x.c.name == name, x.c.status == "running")
                .values(status="stopped", stopped_at=_now(), stopped_by=actor,
                        reason=reason or None)).rowcount == 1

    def experiment(self, name: str) -> dict[str, Any] | None:
        x = t.experiments
        with self.connect() as conn:
            row = conn.execute(select(x).where(x.c.name == name)).mappings().first()
        return self._experiment(row) if row else None

    def running_experiment(self, kind: str = "recommender") -> dict[str, Any] | None:
        x = t.experiments
        with self.connect() as conn:
            row = conn.execute(select(x).where(x.c.status == "running", x.c.kind == kind)
                               ).mappings().first()
        return self._experiment(row) if row else None

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment, the newest first."""
        x = t.experiments
        with self.connect() as conn:
            rows = conn.execute(select(x).order_by(x.c.started_at.desc())).mappings().all()
        return [self._experiment(r) for r in rows]

    def set_grounding(self, call_id: int, verdict: str) -> None:
        with self.connect() as conn:
            conn.execute(update(t.llm_calls).where(t.llm_calls.c.id == call_id)
                         .values(grounding=verdict))

    # -- attempts and one-time codes (service/limits.py, service/identity.py) ----------
    def add_attempt(self, key: str, at: float) -> None:
        with self.connect() as conn:
            conn.execute(insert(t.attempts).values(key=key, at=at))

    def attempt_times(self, key: str, since: float) -> list[float]:
        """When the attempts under ``key`` since ``since`` happened, oldest first."""
        a = t.attempts
        with self.connect() as conn:
            return list(conn.execute(select(a.c.at).where(a.c.key == key, a.c.at >= since)
                                     .order_by(a.c.at)).scalars())

    def hit_rate(self, key: str, now: float, limit: int, window: float) -> bool:
        """Count a call under ``key`` unless ``limit`` calls were counted in the last
        ``window`` seconds (then False, and it is not counted): a sliding window shared by
        every app process. Older calls of the key are dropped on the way."""
        a = t.attempts
        with self._exclusive(f"rate:{key}") as conn:
            conn.execute(delete(a).where(a.c.key == key, a.c.at <= now - window))
            used = conn.execute(select(func.count()).select_from(a).where(a.c.key == key)
                                ).scalar_one()
            if used >= limit:
                return False
            conn.execute(insert(a).values(key=key, at=now))
        return True

    def clear_attempts(self, key: str) -> None:
        with self.connect() as conn:
            conn.execute(delete(t.attempts).where(t.attempts.c.key == key))

    def forget_attempts(self, before: float) -> int:
        with self.connect() as conn:
            return conn.execute(delete(t.attempts).where(t.attempts.c.at < before)).rowcount

    def save_link_code(self, session_id: str, *, customer_id: str, email_hash: str,
                       code_hash: str, expires: float) -> None:
        with self.connect() as conn:
            self._upsert(conn, t.link_codes, {
                "session_id": session_id, "customer_id": customer_id,
                "email_hash": email_hash, "code_hash": code_hash, "expires": expires},
                ("session_id",))

    def link_code(self, session_id: str) -> dict | None:
        c = t.link_codes
        with self.connect() as conn:
            row = conn.execute(select(c).where(c.c.session_id == session_id)).mappings().first()
        return _plain(row) if row else None

    def drop_link_code(self, session_id: str) -> None:
        with self.connect() as conn:
            conn.execute(delete(t.link_codes).where(t.link_codes.c.session_id == session_id))

    # -- personal data: export, erase, retention (service/privacy.py) -------------------
    def session_data(self, session_id: str) -> dict[str, Any] | None:
        """Everything stored for one chat session (None: no such session)."""
        m, f, i, c, e = t.messages, t.feedback, t.item_feedback, t.llm_calls, t.events
        queries = {
            "messages": select(m.c.id, m.c.role, m.c.content, m.c.status, m.c.superseded,
                               m.c.created_at).where(m.c.session_id == session_id)
            .order_by(m.c.id),
            "feedback": select(f.c.message_id, f.c.value, f.c.created_at)
            .join_from(f, m, m.c.id == f.c.message_id).where(m.c.session_id == session_id)
            .order_by(f.c.id),
            "reactions": select(i.c.item, i.c.value, i.c.created_at)
            .where(i.c.session_id == session_id).order_by(i.c.id),
            "model_calls": select(c.c.created_at, c.c.template_name, c.c.template_version,
                                  c.c.provider, c.c.model, c.c.latency_ms, c.c.outcome)
            .where(c.c.session_id == session_id).order_by(c.c.id),
            "events": select(e.c.at, e.c.kind, e.c.item, e.c.position, e.c.segment,
                             e.c.variant, e.c.value).where(e.c.session_id == session_id)
            .order_by(e.c.id),
        }
        with self.connect() as conn:
            session = conn.execute(select(t.sessions).where(t.sessions.c.id == session_id)
                                   ).mappings().first()
            if session is None:
                return None
            out: dict[str, Any] = {"session": _plain(session)}
            for key, stmt in queries.items():
                out[key] = [_plain(r) for r in conn.execute(stmt).mappings()]
        state = self.load_questionnaire(session_id)
        out["questionnaire"] = json.loads(state) if state else None
        out["profile"] = self.load_profile(session_id)
        return out

    def erase_session(self, session_id: str) -> dict[str, int]:
        """Delete a session and everything stored for it (on SQLite, rows overwritten with
        zeros); the model-call log keeps its metrics, unlinked and without error text.
        Returns the rows removed per kind."""
        counts: dict[str, int] = {}
        m = t.messages
        with self.connect() as conn:
            ids = select(m.c.id).where(m.c.session_id == session_id)
            counts["feedback"] = conn.execute(
                delete(t.feedback).where(t.feedback.c.message_id.in_(ids))).rowcount
            counts["messages"] = conn.execute(
                delete(m).where(m.c.session_id == session_id)).rowcount
            for table, kind in ((t.questionnaire_states, "questionnaire"),
                                (t.profiles, "profile"), (t.item_feedback, "reactions"),
                                (t.link_codes, "codes"), (t.events, "events")):
                counts[kind] = conn.execute(
                    delete(table).where(table.c.session_id == session_id)).rowcount
            counts["model_calls_unlinked"] = conn.execute(
                update(t.llm_calls).where(t.llm_calls.c.session_id == session_id)
                .values(session_id=None, error=None)).rowcount
            counts["session"] = conn.execute(
                delete(t.sessions).where(t.sessions.c.id == session_id)).rowcount
        return counts

    def sessions_of_customer(self, customer_id: str) -> list[str]:
        p = t.profiles
        with self.connect() as conn:
            return list(conn.execute(select(p.c.session_id).where(p.c.customer_id ==
                                                                  customer_id)).scalars())

    def erase_drafts_of(self, customer_id: str) -> int:
        with self.connect() as conn:
            return conn.execute(delete(t.drafts).where(t.drafts.c.customer_id == customer_id)
                                ).rowcount

    def erase_drafts_before(self, cutoff: str) -> int:
        """Desk drafts written before ``cutoff`` (ISO time): the drafts' retention."""
        with self.connect() as conn:
            return conn.execute(delete(t.drafts).where(t.drafts.c.created_at < cutoff)
                                ).rowcount

    def erase_events_of(self, customer_id: str) -> int:
        """Events under a customer's id (those of their sessions go with the sessions)."""
        with self.connect() as conn:
            return conn.execute(delete(t.events).where(t.events.c.customer_id == customer_id)
                                ).rowcount

    def erase_events_before(self, cutoff: str) -> int:
        """Events logged before ``cutoff`` (ISO time) that no stored session holds: desk
        exposures of policy experiments (no session) and the simulator's events (sessions
        that were never rows): the retention purge's share of the event log."""
        e, s = t.events, t.sessions
        with self.connect() as conn:
            return conn.execute(delete(e).where(
                e.c.at < cutoff,
                or_(e.c.session_id.is_(None), ~exists().where(s.c.id == e.c.session_id)))
            ).rowcount

    def sessions_idle_since(self, cutoff: str) -> list[str]:
        """Sessions not touched since ``cutoff`` (ISO time)."""
        s = t.sessions
        with self.connect() as conn:
            return list(conn.execute(select(s.c.id).where(s.c.updated_at < cutoff)
                                     .order_by(s.c.updated_at)).scalars())

    def empty_sessions(self, cutoff: str) -> list[str]:
        """Sessions the person said nothing in (no message of theirs, no answer, no
        reaction), untouched since ``cutoff``: a page load or an API client makes one, and
        most are never used."""
        s, q, m, i = t.sessions, t.questionnaire_states, t.messages, t.item_feedback
        stmt = (select(s.c.id).select_from(s.outerjoin(q, q.c.session_id == s.c.id))
                .where(s.c.updated_at < cutoff,
                       or_(q.c.state.is_(None), q.c.state.like('%"answers":{}%')),
                       ~exists().where(m.c.session_id == s.c.id, m.c.role == "user"),
                       ~exists().where(i.c.session_id == s.c.id)))
        with self.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def scrub(self) -> bool:
        """After an erase on SQLite: copy the write-ahead log into the file and empty it,
        so no copy of erased rows stays in it. False when a reader kept it busy (tried a
        few times). PostgreSQL reclaims deleted rows itself (autovacuum): True."""
        if not self.sqlite:
            return True
        for _ in range(20):
            raw = self.engine.raw_connection()
            try:
                busy, _, _ = raw.driver_connection.execute(
                    "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                raw.close()
            if not busy:
                return True
            time.sleep(0.05)
        return False

    def audit_privacy(self, *, actor: str, action: str, subject: str,
                      details: dict[str, Any]) -> None:
        with self.connect() as conn:
            conn.execute(insert(t.privacy_audit).values(
                at=_now(), actor=actor, action=action, subject=subject,
                details=json.dumps(details)))

    def privacy_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        a = t.privacy_audit
        with self.connect() as conn:
            rows = conn.execute(select(a).order_by(a.c.id.desc()).limit(limit)).mappings()
            return [{**_plain(r), "details": json.loads(r["details"])} for r in rows]

    # -- feedback -----------------------------------------------------------------
    def add_feedback(self, message_id: int, value: int) -> None:
        with self.connect() as conn:
            conn.execute(insert(t.feedback).values(message_id=message_id, value=value,
                                                   created_at=_now()))

    # -- LLM call log -------------------------------------------------------------
    def log_llm_call(self, call: LLMCall) -> int:
        data = call.model_dump(exclude={"id"})
        data["created_at"] = data.get("created_at") or _now()
        with self.connect() as conn:
            return int(conn.execute(insert(t.llm_calls).values(**data)
                                    ).inserted_primary_key[0])

    def llm_calls(self, limit: int = 50) -> list[LLMCall]:
        c = t.llm_calls
        with self.connect() as conn:
            rows = conn.execute(select(c).order_by(c.c.id.desc()).limit(limit)).mappings()
            return [LLMCall(**_plain(r)) for r in rows]

    # -- support drafts (assistant/support/desk.py) ---------------------------------------
    _DRAFT_JSON = ("flags", "citations", "injection")
    _DRAFT_UPDATABLE = frozenset({"status", "final_text", "final_agent", "edit_diff",
                                  "feedback", "feedback_reason", "resolved_at",
                                  "resolved_by"})

    def add_draft(self, *, agent: str, customer_id: str | None, ticket: str,
                  template_name: str, template_version: str, model: str, draft: str,
                  status: str, intent: str | None = None,
                  intent_confidence: float | None = None, tone: str | None = None,
                  llm_call_id: int | None = None, flags: list | None = None,
                  citations: list | None = None, injection: list | None = None) -> str:
        """Save a new draft; returns its id (random, not guessable). Its creation time
        has microseconds, so drafts keep their order on both engines."""
        draft_id = uuid.uuid4().hex
        now = _now(precise=True)
        with self.connect() as conn:
            conn.execute(insert(t.drafts).values(
                id=draft_id, created_at=now, agent=agent, customer_id=customer_id,
                ticket=ticket, intent=intent, intent_confidence=intent_confidence, tone=tone,
                template_name=template_name, template_version=template_version, model=model,
                llm_call_id=llm_call_id, draft=draft, flags=json.dumps(flags or []),
                citations=json.dumps(citations or []),
                injection=json.dumps(injection or []), status=status, updated_at=now))
        return draft_id

    def update_draft(self, draft_id: str, **fields: object) -> None:
        unknown = set(fields) - self._DRAFT_UPDATABLE
        if unknown:
            raise ValueError(f"drafts: cannot update {', '.join(sorted(unknown))}")
        if not fields:
            return
        with self.connect() as conn:
            conn.execute(update(t.drafts).where(t.drafts.c.id == draft_id)
                         .values(**fields, updated_at=_now()))

    def _draft_row(self, row: Any) -> dict:
        out = _plain(row)
        for key in self._DRAFT_JSON:
            out[key] = json.loads(out[key]) if out[key] else []
        return out

    def draft(self, draft_id: str) -> dict | None:
        with self.connect() as conn:
            row = conn.execute(select(t.drafts).where(t.drafts.c.id == draft_id)
                               ).mappings().first()
        return self._draft_row(row) if row else None

    def drafts_for(self, customer_id: str, limit: int = 20) -> list[dict]:
        """A customer's drafts, newest first."""
        d = t.drafts
        with self.connect() as conn:
            rows = conn.execute(select(d).where(d.c.customer_id == customer_id)
                                .order_by(d.c.created_at.desc(), d.c.id.desc()).limit(limit)
                                ).mappings()
            return [self._draft_row(r) for r in rows]

    def profiles_of_customer(self, customer_id: str) -> list[dict]:
        """Profiles of the chat sessions linked to a customer, newest first."""
        p = t.profiles
        with self.connect() as conn:
            rows = conn.execute(select(p).where(p.c.customer_id == customer_id)
                                .order_by(p.c.updated_at.desc())).mappings()
            return [self._profile(r) for r in rows]

    # -- prompt studio: template versions, labels, audit log, tests -------------------
    # Queries only; the rules (validation, conflicts, promotion gates) live in
    # assistant/prompts/versions.py.
    @staticmethod
    def _latest_template_version(conn: Connection, name: str) -> int:
        v = t.template_versions
        return int(conn.execute(select(func.max(v.c.version)).where(v.c.name == name)
                                ).scalar() or 0)

    @staticmethod
    def _insert_label_event(conn: Connection, name: str, label: str,
                            from_version: int | None, to_version: int | None, *, actor: str,
                            reason: str, kind: str, override: bool, share: float | None,
                            segment: str | None, now: str) -> int:
        return int(conn.execute(insert(t.template_label_events).values(
            name=name, label=label, from_version=from_version, to_version=to_version,
            actor=actor, reason=reason, kind=kind, override=int(override), share=share,
            segment=segment, created_at=now)).inserted_primary_key[0])

    def add_template_version(self, name: str, body: str, *, sha: str, author: str, note: str,
                             base_version: int | None, label: str | None = None,
                             label_kind: str = "seed") -> int | None:
        """Insert version latest+1 if ``base_version`` is still the latest (0 or None: no
        version yet); None when it is not (a conflict). With ``label``, the label moves to
        the new version in the same transaction (with its audit event)."""
        now = _now()
        with self._exclusive(f"template:{name}") as conn:
            latest = self._latest_template_version(conn, name)
            if latest != (base_version or 0):
                return None
            version = latest + 1
            try:
                with conn.begin_nested():
                    conn.execute(insert(t.template_versions).values(
                        name=name, version=version, body=body, sha=sha, author=author,
                        note=note, created_at=now, base_version=base_version or None))
            except IntegrityError:
                return None
            if label:
                self._upsert_label(conn, name, label, version, share=1.0, segment=None, now=now)
                self._insert_label_event(conn, name, label, None, version, actor=author,
                                         reason=note, kind=label_kind, override=False,
                                         share=1.0, segment=None, now=now)
        return version

    def _upsert_label(self, conn: Connection, name: str, label: str, version: int, *,
                      share: float, segment: str | None, now: str) -> None:
        self._upsert(conn, t.template_labels, {
            "name": name, "label": label, "version": version, "share": share,
            "segment": segment, "updated_at": now}, ("name", "label"))

    def move_template_label(self, name: str, label: str, version: int | None, *, actor: str,
                            reason: str, kind: str, override: bool = False,
                            share: float = 1.0, segment: str | None = None,
                            expected_from: int | None = None,
                            check_from: bool = False) -> tuple[bool, int | None]:
        """Point ``label`` at ``version`` (None removes the label) and append the audit
        event, in one transaction. With ``check_from``, nothing happens unless the label
        still points at ``expected_from``. Returns (moved, the version it pointed at)."""
        now = _now()
        lb = t.template_labels
        this = and_(lb.c.name == name, lb.c.label == label)
        with self._exclusive(f"template:{name}") as conn:
            current = conn.execute(select(lb.c.version).where(this)).scalar_one_or_none()
            if check_from and current != expected_from:
                return False, current
            if version is None:
                conn.execute(delete(lb).where(this))
            else:
                self._upsert_label(conn, name, label, version, share=share, segment=segment,
                                   now=now)
            self._insert_label_event(conn, name, label, current, version, actor=actor,
                                     reason=reason, kind=kind, override=override,
                                     share=share if version is not None else None,
                                     segment=segment, now=now)
        return True, current

    def template_names(self) -> list[str]:
        v = t.template_versions
        with self.connect() as conn:
            return list(conn.execute(select(v.c.name).distinct().order_by(v.c.name)).scalars())

    def latest_template_version(self, name: str) -> int:
        """0 when the template has no version."""
        with self.connect() as conn:
            return self._latest_template_version(conn, name)

    def template_version(self, name: str, version: int, *,
                         timeout: float = 10) -> dict | None:
        v = t.template_versions
        with self._read(timeout) as conn:
            row = conn.execute(select(v).where(v.c.name == name, v.c.version == version)
                               ).mappings().first()
        return _plain(row) if row else None

    def template_versions(self, name: str) -> list[dict]:
        """Every version of a template, oldest first (with bodies)."""
        v = t.template_versions
        with self.connect() as conn:
            return [_plain(r) for r in conn.execute(
                select(v).where(v.c.name == name).order_by(v.c.version)).mappings()]

    def template_labels(self, name: str | None = None, *, labels: tuple[str, ...] = (),
                        timeout: float = 10) -> list[dict]:
        """Labels (of one template, or all), each with the sha of the version it points at."""
        lb, v = t.template_labels, t.template_versions
        stmt = (select(lb.c.name, lb.c.label, lb.c.version, lb.c.share, lb.c.segment,
                       lb.c.updated_at, v.c.sha)
                .select_from(lb.outerjoin(v, and_(v.c.name == lb.c.name,
                                                  v.c.version == lb.c.version)))
                .order_by(lb.c.name, lb.c.label))
        if name is not None:
            stmt = stmt.where(lb.c.name == name)
        if labels:
            stmt = stmt.where(lb.c.label.in_(labels))
        with self._read(timeout) as conn:
            return [_plain(r) for r in conn.execute(stmt).mappings()]

    def template_label_events(self, name: str, label: str | None = None) -> list[dict]:
        """The audit log of a template's label moves, oldest first."""
        ev = t.template_label_events
        stmt = select(ev).where(ev.c.name == name).order_by(ev.c.id)
        if label is not None:
            stmt = stmt.where(ev.c.label == label)
        with self.connect() as conn:
            return [_plain(r) for r in conn.execute(stmt).mappings()]

    def set_template_tests(self, name: str, cases_json: str, *, sha: str, author: str) -> None:
        with self.connect() as conn:
            self._upsert(conn, t.template_tests, {
                "name": name, "cases": cases_json, "sha": sha, "updated_at": _now(),
                "author": author}, ("name",))

    def template_tests(self, name: str) -> dict | None:
        tt = t.template_tests
        with self.connect() as conn:
            row = conn.execute(select(tt).where(tt.c.name == name)).mappings().first()
        return _plain(row) if row else None

    def add_template_test_run(self, name: str, version: int, *, cases_sha: str, model: str,
                              results_json: str, pass_rate: float | None,
                              actor: str) -> dict:
        runs = t.template_test_runs
        with self.connect() as conn:
            run_id = conn.execute(insert(runs).values(
                name=name, version=version, cases_sha=cases_sha, model=model,
                results=results_json, pass_rate=pass_rate, created_at=_now(), actor=actor)
            ).inserted_primary_key[0]
            return _plain(conn.execute(select(runs).where(runs.c.id == run_id)).mappings().one())

    def last_template_test_run(self, name: str, version: int) -> dict | None:
        runs = t.template_test_runs
        with self.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.name == name, runs.c.version == version)
                               .order_by(runs.c.id.desc()).limit(1)).mappings().first()
        return _plain(row) if row else None

    # -- prompt studio metrics (assistant/prompts/metrics.py) --
    # Read-only; the metrics live in assistant/prompts/metrics.py. Every query keeps the
    # calls of one template (``name``) made at/after ``since`` (when given) and outside
    # ``exclude_sessions`` (calls without a session are kept).
    @staticmethod
    def _template_call_filter(c: Any, name: str, since: str | None,
                              exclude_sessions: tuple[str, ...],
                              segment: str | None = None) -> list[Any]:
        where = [c.c.template_name == name]
        if segment is not None:  # sessions whose saved profile is in that segment
            p = t.profiles
            where.append(c.c.session_id.in_(select(p.c.session_id)
                                            .where(p.c.segment == segment)))
        if since is not None:
            where.append(c.c.created_at >= since)
        if exclude_sessions:
            where.append(or_(c.c.session_id.is_(None),
                             c.c.session_id.not_in(exclude_sessions)))
        return where

    def template_calls(self, name: str, *, since: str | None = None,
                       exclude_sessions: tuple[str, ...] = (),
                       segment: str | None = None) -> list[dict]:
        """The logged calls of a template, oldest first."""
        c = t.llm_calls
        stmt = (select(c.c.id, c.c.created_at, c.c.session_id, c.c.template_version,
                       c.c.latency_ms, c.c.ttft_ms, c.c.prompt_tokens, c.c.completion_tokens,
                       c.c.outcome, c.c.grounding)
                .where(*self._template_call_filter(c, name, since, exclude_sessions, segment))
                .order_by(c.c.id))
        with self.connect() as conn:
            return [_plain(r) for r in conn.execute(stmt).mappings()]

    def template_call_feedback(self, name: str, *, since: str | None = None,
                               exclude_sessions: tuple[str, ...] = (),
                               segment: str | None = None) -> list[dict]:
        """Thumbs on the messages written by a template's calls: the latest vote per
        message (call_id, template_version, message_id, value)."""
        c, m, f = t.llm_calls, t.messages, t.feedback
        stmt = (select(c.c.id.label("call_id"), c.c.template_version,
                       m.c.id.label("message_id"), self._latest_vote(m.c.id).label("value"))
                .join_from(c, m, m.c.llm_call_id == c.c.id)
                .where(*self._template_call_filter(c, name, since, exclude_sessions, segment),
                       exists().where(f.c.message_id == m.c.id))
                .order_by(m.c.id))
        with self.connect() as conn:
            return [_plain(r) for r in conn.execute(stmt).mappings()]

    def template_item_feedback(self, name: str, *, since: str | None = None,
                               exclude_sessions: tuple[str, ...] = (),
                               segment: str | None = None) -> list[dict]:
        """Reactions to recommended items, each attributed to the latest call of the
        template in the same session made at or before it (ties on time: the highest id);
        reactions without such a call are left out. ``since`` applies to that call."""
        r, c = t.item_feedback, t.llm_calls
        p = t.llm_calls.alias("p")
        call_id = (select(p.c.id)
                   .where(p.c.session_id == r.c.session_id, p.c.template_name == name,
                          p.c.created_at <= r.c.created_at)
                   .order_by(p.c.created_at.desc(), p.c.id.desc()).limit(1)
                   .scalar_subquery())
        a = select(r.c.id, r.c.session_id, r.c.item, r.c.value, r.c.created_at,
                   call_id.label("call_id")).cte("attributed")
        stmt = (select(a.c.id, a.c.session_id, a.c.item, a.c.value, a.c.created_at,
                       a.c.call_id, c.c.template_version)
                .join_from(a, c, c.c.id == a.c.call_id)
                .where(*self._template_call_filter(c, name, since, exclude_sessions, segment))
                .order_by(a.c.id))
        with self.connect() as conn:
            return [_plain(row) for row in conn.execute(stmt).mappings()]

    def template_drafts(self, name: str, *, since: str | None = None,
                        exclude_sessions: tuple[str, ...] = ()) -> list[dict]:
        """Support drafts written with a template (``since``: the draft's creation), oldest
        first; drafts whose call ran in ``exclude_sessions`` are left out."""
        d, c = t.drafts, t.llm_calls
        stmt = (select(d).join_from(d, c, c.c.id == d.c.llm_call_id, isouter=True)
                .where(d.c.template_name == name).order_by(d.c.created_at, d.c.id))
        if since is not None:
            stmt = stmt.where(d.c.created_at >= since)
        if exclude_sessions:
            stmt = stmt.where(or_(c.c.session_id.is_(None),
                                  c.c.session_id.not_in(exclude_sessions)))
        with self.connect() as conn:
            return [_plain(r) for r in conn.execute(stmt).mappings()]

    # -- staff users (infra/users.py holds the rules; revision 0002) -------------------
    def users(self) -> dict[str, dict[str, Any]]:
        """Every staff user's record by name (name, role, password_hash, created_at)."""
        u = t.users
        with self.connect() as conn:
            return {r["name"]: _plain(r) for r in conn.execute(select(u).order_by(u.c.name))
                    .mappings()}

    def change_users(self, change: Callable[[dict[str, dict[str, Any]]], T]) -> T:
        """Read-modify-write of the users under one lock: ``change`` gets every record by
        name and edits the dict in place; added, changed and removed records are written
        in the same transaction. Returns what ``change`` returns."""
        u = t.users
        with self._exclusive("users") as conn:
            before = {r["name"]: _plain(r) for r in conn.execute(select(u)).mappings()}
            users = {name: dict(rec) for name, rec in before.items()}
            result = change(users)
            gone = set(before) - set(users)
            if gone:
                conn.execute(delete(u).where(u.c.name.in_(gone)))
            for name, rec in users.items():
                if before.get(name) != rec:
                    self._upsert(conn, u, {col.name: rec[col.name] for col in u.columns}, ("name",))
        return result

    # -- leases: one process at a time does a job (service/bootstrap.py) ---------------
    def take_lease(self, name: str, holder: str, seconds: float) -> str:
        """Take the lease ``name`` for ``seconds`` unless another holder has it and it has
        not expired (then nothing changes); returns the holder after the call. The holder
        renews it by taking it again."""
        le = t.leases
        now = time.time()
        with self._exclusive(f"lease:{name}") as conn:
            row = conn.execute(select(le).where(le.c.name == name)).mappings().first()
            if row is not None and row["holder"] != holder and row["expires"] > now:
                return row["holder"]
            self._upsert(conn, le, {"name": name, "holder": holder, "acquired_at": _now(),
                                    "expires": now + seconds}, ("name",))
        return holder

    def release_lease(self, name: str, holder: str) -> bool:
        le = t.leases
        with self.connect() as conn:
            return conn.execute(delete(le).where(le.c.name == name, le.c.holder == holder)
                                ).rowcount == 1
