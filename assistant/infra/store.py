"""SQLite store: chat sessions and messages, the LLM call log, feedback.

Forward-only migrations: each entry of ``MIGRATIONS`` runs once, in order, and its index is
recorded in ``schema_migrations``. Never edit a shipped migration; append a new one.
A connection per operation keeps the store safe to use from Gradio's worker threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.core.errors import StoreError
from assistant.core.schemas import ChatMessage, LLMCall, Session

MIGRATIONS: list[str] = [
    # 1: sessions, messages, LLM call log, feedback
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'ok',
        superseded INTEGER NOT NULL DEFAULT 0,
        llm_call_id INTEGER REFERENCES llm_calls(id),
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_session ON messages(session_id, id);
    CREATE TABLE llm_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        session_id TEXT,
        template_name TEXT,
        template_version TEXT,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        latency_ms REAL,
        ttft_ms REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        outcome TEXT NOT NULL,
        error TEXT
    );
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id INTEGER NOT NULL REFERENCES messages(id),
        value INTEGER NOT NULL CHECK (value IN (-1, 1)),
        created_at TEXT NOT NULL
    );
    """,
    # 2: the guided questionnaire's state per chat session (saved after every answer)
    """
    CREATE TABLE questionnaire_states (
        session_id TEXT PRIMARY KEY REFERENCES sessions(id),
        state TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 3: profiles (the structured part beside the Chroma embedding), reactions to
    #    recommended items, and grounding failures of generated texts
    """
    CREATE TABLE profiles (
        session_id TEXT PRIMARY KEY REFERENCES sessions(id),
        customer_id TEXT,
        segment TEXT,
        document TEXT NOT NULL,
        facts TEXT NOT NULL,
        behaviour TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE item_feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL REFERENCES sessions(id),
        item TEXT NOT NULL,
        value TEXT NOT NULL CHECK (value IN ('like', 'dislike', 'not_for_me')),
        created_at TEXT NOT NULL
    );
    CREATE INDEX item_feedback_session ON item_feedback(session_id, id);
    ALTER TABLE llm_calls ADD COLUMN grounding TEXT;
    """,
    # 4: support-reply drafts of the Agent desk (assistant/support/desk.py): the ticket, the
    #    context's template version and model, the draft with its flags and citations, the
    #    agent's final text with a unified diff of their edits, feedback
    """
    CREATE TABLE drafts (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        agent TEXT NOT NULL,
        customer_id TEXT,
        ticket TEXT NOT NULL,
        intent TEXT,
        intent_confidence REAL,
        tone TEXT,
        template_name TEXT NOT NULL,
        template_version TEXT NOT NULL,
        model TEXT NOT NULL,
        llm_call_id INTEGER REFERENCES llm_calls(id),
        draft TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '[]',
        citations TEXT NOT NULL DEFAULT '[]',
        injection TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL CHECK (status IN ('clean', 'flagged', 'discarded', 'final')),
        final_text TEXT,
        final_agent TEXT,
        edit_diff TEXT,
        feedback INTEGER CHECK (feedback IN (-1, 1)),
        feedback_reason TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX drafts_customer ON drafts(customer_id, created_at);
    CREATE INDEX profiles_customer ON profiles(customer_id);
    """,
    # 5: the prompt studio (assistant/prompts/versions.py): immutable template versions
    #    (never updated or deleted: triggers refuse it), labels pointing at versions (with a
    #    traffic share and an optional segment for staged rollout), the audit log of every
    #    label move, test cases per template and their runs per version
    """
    CREATE TABLE template_versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        body TEXT NOT NULL,
        sha TEXT NOT NULL,
        author TEXT NOT NULL,
        note TEXT NOT NULL CHECK (trim(note) <> ''),
        created_at TEXT NOT NULL,
        base_version INTEGER,
        UNIQUE (name, version)
    );
    CREATE TRIGGER template_versions_no_update BEFORE UPDATE ON template_versions
    BEGIN SELECT RAISE(ABORT, 'template versions are immutable'); END;
    CREATE TRIGGER template_versions_no_delete BEFORE DELETE ON template_versions
    BEGIN SELECT RAISE(ABORT, 'template versions are immutable'); END;
    CREATE TABLE template_labels (
        name TEXT NOT NULL,
        label TEXT NOT NULL,
        version INTEGER NOT NULL,
        share REAL NOT NULL DEFAULT 1.0 CHECK (share >= 0 AND share <= 1),
        segment TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (name, label),
        FOREIGN KEY (name, version) REFERENCES template_versions (name, version)
    );
    CREATE TABLE template_label_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        label TEXT NOT NULL,
        from_version INTEGER,
        to_version INTEGER,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL CHECK (kind IN ('seed', 'set', 'rollback', 'remove', 'sync')),
        override INTEGER NOT NULL DEFAULT 0,
        share REAL,
        segment TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX template_label_events_name ON template_label_events(name, label, id);
    CREATE TRIGGER template_label_events_no_update BEFORE UPDATE ON template_label_events
    BEGIN SELECT RAISE(ABORT, 'the label audit log is append-only'); END;
    CREATE TRIGGER template_label_events_no_delete BEFORE DELETE ON template_label_events
    BEGIN SELECT RAISE(ABORT, 'the label audit log is append-only'); END;
    CREATE TABLE template_tests (
        name TEXT PRIMARY KEY,
        cases TEXT NOT NULL,
        sha TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        author TEXT NOT NULL
    );
    CREATE TABLE template_test_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        cases_sha TEXT NOT NULL,
        model TEXT NOT NULL,
        results TEXT NOT NULL,
        pass_rate REAL,
        created_at TEXT NOT NULL,
        actor TEXT NOT NULL
    );
    CREATE INDEX template_test_runs_version ON template_test_runs(name, version, id);
    """,
    # 6: failed attempts (linking a customer, logging in) for rate limits and lockouts, and
    # the one-time codes sent to verify an email (hashed)
    """
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX attempts_key ON attempts(key, at);
    CREATE TABLE link_codes (
        session_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        email_hash TEXT NOT NULL,
        code_hash TEXT NOT NULL,
        expires REAL NOT NULL
    );
    """,
    # 7: exports and erasures of personal data, who and when (never what was erased)
    """
    CREATE TABLE privacy_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('export', 'erase', 'purge')),
        subject TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TRIGGER privacy_audit_no_update BEFORE UPDATE ON privacy_audit
    BEGIN SELECT RAISE(ABORT, 'the privacy audit log is append-only'); END;
    CREATE TRIGGER privacy_audit_no_delete BEFORE DELETE ON privacy_audit
    BEGIN SELECT RAISE(ABORT, 'the privacy audit log is append-only'); END;
    """,
    # 8: how many personal values a call replaced by placeholders (never the values)
    """
    ALTER TABLE llm_calls ADD COLUMN redactions INTEGER;
    """,
    # 9: the event log: what the app showed and what people did (service/events.py).
    #    Append-only (an update is refused); rows go only with their session (erase,
    #    retention purge)
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('impression', 'reaction', 'click',
                                           'satisfaction')),
        session_id TEXT,
        customer_id TEXT,
        segment TEXT,
        item TEXT,
        position INTEGER,
        variant TEXT,
        template_version TEXT,
        value TEXT
    );
    CREATE INDEX events_kind_at ON events(kind, at);
    CREATE INDEX events_session ON events(session_id, id);
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    """,
    # 10: experiments between recommender variants (service/experiments.py); at most one
    #     running (a partial unique index)
    """
    CREATE TABLE experiments (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL DEFAULT 'recommender' CHECK (kind IN ('recommender')),
        arms TEXT NOT NULL,
        metric TEXT NOT NULL,
        base_rate REAL NOT NULL,
        mde REAL NOT NULL,
        planned INTEGER NOT NULL,
        share REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'stopped')),
        started_at TEXT NOT NULL,
        started_by TEXT NOT NULL,
        stopped_at TEXT,
        stopped_by TEXT,
        reason TEXT
    );
    CREATE UNIQUE INDEX experiments_one_running ON experiments(status)
        WHERE status = 'running';
    """,
    # 11: policy experiments (a segment's support policy against a variant): experiments
    #     get a kind 'policy' and a segment, one may run per kind; the event log gets
    #     'exposure' (a customer's draft written under an experiment's policy). SQLite
    #     cannot change a CHECK, so both tables are rebuilt with their rows.
    """
    CREATE TABLE experiments_new (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL DEFAULT 'recommender' CHECK (kind IN ('recommender', 'policy')),
        segment TEXT CHECK ((kind = 'policy') = (segment IS NOT NULL)),
        arms TEXT NOT NULL,
        metric TEXT NOT NULL,
        base_rate REAL NOT NULL,
        mde REAL NOT NULL,
        planned INTEGER NOT NULL,
        share REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'stopped')),
        started_at TEXT NOT NULL,
        started_by TEXT NOT NULL,
        stopped_at TEXT,
        stopped_by TEXT,
        reason TEXT
    );
    INSERT INTO experiments_new (name, kind, arms, metric, base_rate, mde, planned, share,
                                 status, started_at, started_by, stopped_at, stopped_by,
                                 reason)
        SELECT name, kind, arms, metric, base_rate, mde, planned, share, status, started_at,
               started_by, stopped_at, stopped_by, reason FROM experiments;
    DROP TABLE experiments;
    ALTER TABLE experiments_new RENAME TO experiments;
    CREATE UNIQUE INDEX experiments_one_running ON experiments(kind)
        WHERE status = 'running';
    CREATE TABLE events_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('impression', 'reaction', 'click',
                                           'satisfaction', 'exposure')),
        session_id TEXT,
        customer_id TEXT,
        segment TEXT,
        item TEXT,
        position INTEGER,
        variant TEXT,
        template_version TEXT,
        value TEXT
    );
    INSERT INTO events_new SELECT * FROM events;
    DROP TABLE events;
    ALTER TABLE events_new RENAME TO events;
    CREATE INDEX events_kind_at ON events(kind, at);
    CREATE INDEX events_session ON events(session_id, id);
    CREATE INDEX events_customer ON events(customer_id);
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    """,
]

#: the event log's columns after ``id`` (``add_events`` takes dicts with these keys)
EVENT_COLUMNS = ("at", "kind", "session_id", "customer_id", "segment", "item", "position",
                 "variant", "template_version", "value")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    """All SQLite access. ``Store(path)`` creates the file and applies pending migrations."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()  # this thread's connection (``connect``)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.migrate()
            # held open, never used: while one connection stays open, closing another
            # (``_immediate``'s) does not checkpoint and delete the WAL each time
            self._keeper = sqlite3.connect(self.path, check_same_thread=False)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"Cannot open the database {self.path}: {exc}",
                "Check that TAILOR_DATA_DIR is writable and the file is a Tailor SQLite "
                "database (move a damaged file aside; a new one is created).",
            ) from exc

    def close(self) -> None:
        """Close the connections this object keeps (the keeper and this thread's; the next
        call opens this thread's again). Other threads' connections close with the object."""
        self._keeper.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction (committed at the end, rolled back on an error) on this thread's
        connection: opened once per thread and kept, because opening one and setting it up
        cost more than most queries under concurrent chats. Store methods never nest it."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            # WAL (set in migrate) with NORMAL sync: a commit survives a killed process;
            # only a power cut may lose the last commits (the WAL is synced at checkpoints)
            conn.execute("PRAGMA synchronous = NORMAL")
            # deleted rows are overwritten with zeros, so an erased conversation is not
            # left in free pages of the file
            conn.execute("PRAGMA secure_delete = ON")
            self._local.conn = conn
        with conn:
            yield conn

    # -- migrations ---------------------------------------------------------------
    def schema_version(self) -> int:
        with self.connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return row[0] or 0

    def migrate(self) -> int:
        """Apply pending migrations; return how many ran."""
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise StoreError(
                f"The database {self.path} has schema version {current}, newer than this "
                f"Tailor ({len(MIGRATIONS)}).",
                "Upgrade Tailor, or point TAILOR_DATA_DIR at another directory.",
            )
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
        for version in range(current + 1, len(MIGRATIONS) + 1):
            conn = sqlite3.connect(self.path)
            try:
                conn.executescript(
                    "BEGIN;\n"
                    + MIGRATIONS[version - 1]
                    + f"\nINSERT INTO schema_migrations VALUES ({version}, '{_now()}');\nCOMMIT;"
                )
            except sqlite3.Error:
                conn.rollback()
                raise
            finally:
                conn.close()
        return len(MIGRATIONS) - current

    # -- sessions and messages ----------------------------------------------------
    def create_session(self) -> Session:
        sid = uuid.uuid4().hex
        now = _now()
        with self.connect() as conn:
            conn.execute("INSERT INTO sessions VALUES (?, ?, ?)", (sid, now, now))
        return Session(id=sid, created_at=now, updated_at=now)

    def get_session(self, session_id: str) -> Session | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return Session(**dict(row)) if row else None

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
            cur = conn.execute(
                "INSERT INTO messages (session_id, role, content, status, llm_call_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, role, content, status, llm_call_id, now),
            )
            conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, session_id))
            mid = cur.lastrowid
        return ChatMessage(
            id=mid, session_id=session_id, role=role, content=content, status=status,
            created_at=now,
        )

    def messages(self, session_id: str) -> list[ChatMessage]:
        """The visible conversation: superseded replies (regenerated) are left out."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT m.id, m.session_id, m.role, m.content, m.status, m.created_at, "
                "(SELECT value FROM feedback f WHERE f.message_id = m.id "
                " ORDER BY f.id DESC LIMIT 1) AS feedback "
                "FROM messages m WHERE session_id = ? AND superseded = 0 ORDER BY id",
                (session_id,),
            ).fetchall()
        return [ChatMessage(**dict(r)) for r in rows]

    def supersede(self, message_id: int) -> None:
        with self.connect() as conn:
            conn.execute("UPDATE messages SET superseded = 1 WHERE id = ?", (message_id,))

    # -- questionnaire --------------------------------------------------------------
    def load_questionnaire(self, session_id: str) -> str | None:
        with self.connect() as conn:
            row = conn.execute("SELECT state FROM questionnaire_states WHERE session_id = ?",
                               (session_id,)).fetchone()
        return row[0] if row else None

    def save_questionnaire(self, session_id: str, state_json: str) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO questionnaire_states VALUES (?, ?, ?) ON CONFLICT(session_id) "
                "DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                (session_id, state_json, _now()))

    # -- profiles -------------------------------------------------------------------
    def save_profile(self, session_id: str, *, document: str, facts: dict,
                     customer_id: str | None, segment: str | None,
                     behaviour: dict | None) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO profiles VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(session_id) "
                "DO UPDATE SET customer_id = excluded.customer_id, segment = excluded.segment, "
                "document = excluded.document, facts = excluded.facts, "
                "behaviour = excluded.behaviour, updated_at = excluded.updated_at",
                (session_id, customer_id, segment, document, json.dumps(facts, default=str),
                 json.dumps(behaviour, default=str) if behaviour is not None else None,
                 _now()))

    def load_profile(self, session_id: str) -> dict | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM profiles WHERE session_id = ?",
                               (session_id,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["facts"] = json.loads(out["facts"])
        out["behaviour"] = json.loads(out["behaviour"]) if out["behaviour"] else None
        return out

    def add_item_feedback(self, session_id: str, item: str, value: str) -> None:
        with self.connect() as conn:
            conn.execute("INSERT INTO item_feedback (session_id, item, value, created_at) "
                         "VALUES (?, ?, ?, ?)", (session_id, item, value, _now()))

    def item_feedback(self, session_id: str) -> dict[str, str]:
        """The latest reaction per item of a session."""
        with self.connect() as conn:
            rows = conn.execute("SELECT item, value FROM item_feedback WHERE session_id = ? "
                                "ORDER BY id", (session_id,)).fetchall()
        return {r["item"]: r["value"] for r in rows}

    # -- the event log (service/events.py) ---------------------------------------------
    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Append events (dicts with ``EVENT_COLUMNS`` keys; ``at`` defaults to now)."""
        if not events:
            return
        now = _now()
        rows = [tuple(e.get(c, now if c == "at" else None) for c in EVENT_COLUMNS)
                for e in events]
        marks = ", ".join("?" * len(EVENT_COLUMNS))
        try:
            with self.connect() as conn:
                conn.executemany(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                                 f"VALUES ({marks})", rows)
        except sqlite3.Error as exc:
            raise StoreError(f"Cannot log {len(rows)} event(s): {exc}",
                             "Check that the disk holding TAILOR_DATA_DIR has room.") from exc

    def events(self, *, kinds: tuple[str, ...] = (), since: str | None = None,
               until: str | None = None) -> list[dict[str, Any]]:
        """Events in the order they were logged, of these kinds (all when empty), logged
        at or after ``since`` and before ``until`` (ISO times)."""
        where, args = ["1 = 1"], []
        if kinds:
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            args += list(kinds)
        if since:
            where.append("at >= ?")
            args.append(since)
        if until:
            where.append("at < ?")
            args.append(until)
        with self.connect() as conn:
            rows = conn.execute(f"SELECT * FROM events WHERE {' AND '.join(where)} "
                                "ORDER BY id", args).fetchall()
        return [dict(r) for r in rows]

    # -- experiments (service/experiments.py) -------------------------------------------
    @staticmethod
    def _experiment(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        out["arms"] = json.loads(out["arms"])
        return out

    def add_experiment(self, *, name: str, arms: dict[str, str], metric: str,
                       base_rate: float, mde: float, planned: int, share: float,
                       actor: str, kind: str = "recommender",
                       segment: str | None = None) -> None:
        try:
            with self.connect() as conn:
                conn.execute(
                    "INSERT INTO experiments (name, kind, segment, arms, metric, base_rate, "
                    "mde, planned, share, status, started_at, started_by) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                    (name, kind, segment, json.dumps(arms), metric, base_rate, mde, planned,
                     share, _now(), actor))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"The experiment '{name}' cannot start: {exc}.",
                             "Another experiment of this kind is running, or the name was "
                             "used.") from exc

    def stop_experiment(self, name: str, *, actor: str, reason: str = "") -> bool:
        """Stop a running experiment; False when it was not running."""
        with self.connect() as conn:
            return conn.execute(
                "UPDATE experiments SET status = 'stopped', stopped_at = ?, stopped_by = ?, "
                "reason = ? WHERE name = ? AND status = 'running'",
                (_now(), actor, reason or None, name)).rowcount == 1

    def experiment(self, name: str) -> dict[str, Any] | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM experiments WHERE name = ?", (name,)).fetchone()
        return self._experiment(row) if row else None

    def running_experiment(self, kind: str = "recommender") -> dict[str, Any] | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM experiments WHERE status = 'running' "
                               "AND kind = ?", (kind,)).fetchone()
        return self._experiment(row) if row else None

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment, the newest first."""
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM experiments ORDER BY started_at DESC").fetchall()
        return [self._experiment(r) for r in rows]

    def set_grounding(self, call_id: int, verdict: str) -> None:
        with self.connect() as conn:
            conn.execute("UPDATE llm_calls SET grounding = ? WHERE id = ?", (verdict, call_id))

    # -- attempts and one-time codes (service/limits.py, service/identity.py) ----------
    def add_attempt(self, key: str, at: float) -> None:
        with self.connect() as conn:
            conn.execute("INSERT INTO attempts (key, at) VALUES (?, ?)", (key, at))

    def attempt_times(self, key: str, since: float) -> list[float]:
        """When the attempts under ``key`` since ``since`` happened, oldest first."""
        with self.connect() as conn:
            rows = conn.execute("SELECT at FROM attempts WHERE key = ? AND at >= ? ORDER BY at",
                                (key, since)).fetchall()
        return [r["at"] for r in rows]

    def clear_attempts(self, key: str) -> None:
        with self.connect() as conn:
            conn.execute("DELETE FROM attempts WHERE key = ?", (key,))

    def forget_attempts(self, before: float) -> int:
        with self.connect() as conn:
            return conn.execute("DELETE FROM attempts WHERE at < ?", (before,)).rowcount

    def save_link_code(self, session_id: str, *, customer_id: str, email_hash: str,
                       code_hash: str, expires: float) -> None:
        with self.connect() as conn:
            conn.execute("INSERT OR REPLACE INTO link_codes VALUES (?, ?, ?, ?, ?)",
                         (session_id, customer_id, email_hash, code_hash, expires))

    def link_code(self, session_id: str) -> dict | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM link_codes WHERE session_id = ?",
                               (session_id,)).fetchone()
        return dict(row) if row else None

    def drop_link_code(self, session_id: str) -> None:
        with self.connect() as conn:
            conn.execute("DELETE FROM link_codes WHERE session_id = ?", (session_id,))

    # -- personal data: export, erase, retention (service/privacy.py) -------------------
    def session_data(self, session_id: str) -> dict[str, Any] | None:
        """Everything stored for one chat session (None: no such session)."""
        with self.connect() as conn:
            session = conn.execute("SELECT * FROM sessions WHERE id = ?",
                                   (session_id,)).fetchone()
            if session is None:
                return None
            q = conn.execute("SELECT state FROM questionnaire_states WHERE session_id = ?",
                             (session_id,)).fetchone()
            rows = {
                "messages": "SELECT id, role, content, status, superseded, created_at "
                            "FROM messages WHERE session_id = ? ORDER BY id",
                "feedback": "SELECT f.message_id, f.value, f.created_at FROM feedback f "
                            "JOIN messages m ON m.id = f.message_id WHERE m.session_id = ? "
                            "ORDER BY f.id",
                "reactions": "SELECT item, value, created_at FROM item_feedback "
                             "WHERE session_id = ? ORDER BY id",
                "model_calls": "SELECT created_at, template_name, template_version, provider, "
                               "model, latency_ms, outcome FROM llm_calls "
                               "WHERE session_id = ? ORDER BY id",
                "events": "SELECT at, kind, item, position, segment, variant, value "
                          "FROM events WHERE session_id = ? ORDER BY id",
            }
            out: dict[str, Any] = {"session": dict(session)}
            for key, sql in rows.items():
                out[key] = [dict(r) for r in conn.execute(sql, (session_id,)).fetchall()]
        out["questionnaire"] = json.loads(q["state"]) if q else None
        out["profile"] = self.load_profile(session_id)
        return out

    def erase_session(self, session_id: str) -> dict[str, int]:
        """Delete a session and everything stored for it (rows overwritten with zeros: see
        ``connect``); the model-call log keeps its metrics, unlinked and without error text.
        Returns the rows removed per kind."""
        counts: dict[str, int] = {}
        with self.connect() as conn:
            ids = "SELECT id FROM messages WHERE session_id = ?"
            counts["feedback"] = conn.execute(
                f"DELETE FROM feedback WHERE message_id IN ({ids})", (session_id,)).rowcount
            counts["messages"] = conn.execute(
                "DELETE FROM messages WHERE session_id = ?", (session_id,)).rowcount
            for table, kind in (("questionnaire_states", "questionnaire"),
                                ("profiles", "profile"), ("item_feedback", "reactions"),
                                ("link_codes", "codes"), ("events", "events")):
                counts[kind] = conn.execute(f"DELETE FROM {table} WHERE session_id = ?",
                                            (session_id,)).rowcount
            counts["model_calls_unlinked"] = conn.execute(
                "UPDATE llm_calls SET session_id = NULL, error = NULL WHERE session_id = ?",
                (session_id,)).rowcount
            counts["session"] = conn.execute("DELETE FROM sessions WHERE id = ?",
                                             (session_id,)).rowcount
        return counts

    def sessions_of_customer(self, customer_id: str) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT session_id FROM profiles WHERE customer_id = ?",
                                (customer_id,)).fetchall()
        return [r["session_id"] for r in rows]

    def erase_drafts_of(self, customer_id: str) -> int:
        with self.connect() as conn:
            return conn.execute("DELETE FROM drafts WHERE customer_id = ?",
                                (customer_id,)).rowcount

    def erase_events_of(self, customer_id: str) -> int:
        """Events under a customer's id (those of their sessions go with the sessions)."""
        with self.connect() as conn:
            return conn.execute("DELETE FROM events WHERE customer_id = ?",
                                (customer_id,)).rowcount

    def erase_events_before(self, cutoff: str) -> int:
        """Events of no session (desk exposures of policy experiments) logged before
        ``cutoff`` (ISO time): the retention purge's share of the event log."""
        with self.connect() as conn:
            return conn.execute("DELETE FROM events WHERE session_id IS NULL AND at < ?",
                                (cutoff,)).rowcount

    def sessions_idle_since(self, cutoff: str) -> list[str]:
        """Sessions not touched since ``cutoff`` (ISO time)."""
        with self.connect() as conn:
            rows = conn.execute("SELECT id FROM sessions WHERE updated_at < ? ORDER BY "
                                "updated_at", (cutoff,)).fetchall()
        return [r["id"] for r in rows]

    def empty_sessions(self, cutoff: str) -> list[str]:
        """Sessions the person said nothing in (no message of theirs, no answer, no
        reaction), untouched since ``cutoff``: a page load or an API client makes one, and
        most are never used."""
        with self.connect() as conn:
            return [r["id"] for r in conn.execute(
                "SELECT s.id FROM sessions s LEFT JOIN questionnaire_states q "
                "ON q.session_id = s.id WHERE s.updated_at < ? "
                "AND (q.state IS NULL OR q.state LIKE '%\"answers\":{}%') "
                "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.session_id = s.id "
                "AND m.role = 'user') "
                "AND NOT EXISTS (SELECT 1 FROM item_feedback i WHERE i.session_id = s.id)",
                (cutoff,)).fetchall()]

    def scrub(self) -> bool:
        """After an erase: copy the write-ahead log into the file and empty it, so no copy
        of erased rows stays in it. False when a reader kept it busy (tried a few times)."""
        for _ in range(20):
            with self.connect() as conn:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            time.sleep(0.05)
        return False

    def audit_privacy(self, *, actor: str, action: str, subject: str,
                      details: dict[str, Any]) -> None:
        with self.connect() as conn:
            conn.execute("INSERT INTO privacy_audit (at, actor, action, subject, details) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (_now(), actor, action, subject, json.dumps(details)))

    def privacy_audit(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM privacy_audit ORDER BY id DESC LIMIT ?",
                                (limit,)).fetchall()
        return [{**dict(r), "details": json.loads(r["details"])} for r in rows]

    # -- feedback -----------------------------------------------------------------
    def add_feedback(self, message_id: int, value: int) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO feedback (message_id, value, created_at) VALUES (?, ?, ?)",
                (message_id, value, _now()),
            )

    # -- LLM call log -------------------------------------------------------------
    def log_llm_call(self, call: LLMCall) -> int:
        data = call.model_dump(exclude={"id"})
        data["created_at"] = data.get("created_at") or _now()
        cols = ", ".join(data)
        marks = ", ".join("?" for _ in data)
        with self.connect() as conn:
            sql = f"INSERT INTO llm_calls ({cols}) VALUES ({marks})"
            cur = conn.execute(sql, list(data.values()))
        return int(cur.lastrowid)

    def llm_calls(self, limit: int = 50) -> list[LLMCall]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT * FROM llm_calls ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [LLMCall(**dict(r)) for r in rows]

    # -- support drafts (assistant/support/desk.py) ---------------------------------------
    _DRAFT_JSON = ("flags", "citations", "injection")
    _DRAFT_UPDATABLE = frozenset({"status", "final_text", "final_agent", "edit_diff",
                                  "feedback", "feedback_reason"})

    def add_draft(self, *, agent: str, customer_id: str | None, ticket: str,
                  template_name: str, template_version: str, model: str, draft: str,
                  status: str, intent: str | None = None,
                  intent_confidence: float | None = None, tone: str | None = None,
                  llm_call_id: int | None = None, flags: list | None = None,
                  citations: list | None = None, injection: list | None = None) -> str:
        """Save a new draft; returns its id (random, not guessable)."""
        draft_id = uuid.uuid4().hex
        now = _now()
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO drafts (id, created_at, agent, customer_id, ticket, intent, "
                "intent_confidence, tone, template_name, template_version, model, "
                "llm_call_id, draft, flags, citations, injection, status, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (draft_id, now, agent, customer_id, ticket, intent, intent_confidence, tone,
                 template_name, template_version, model, llm_call_id, draft,
                 json.dumps(flags or []), json.dumps(citations or []),
                 json.dumps(injection or []), status, now))
        return draft_id

    def update_draft(self, draft_id: str, **fields: object) -> None:
        unknown = set(fields) - self._DRAFT_UPDATABLE
        if unknown:
            raise ValueError(f"drafts: cannot update {', '.join(sorted(unknown))}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.connect() as conn:
            conn.execute(f"UPDATE drafts SET {sets}, updated_at = ? WHERE id = ?",
                         [*fields.values(), _now(), draft_id])

    def _draft_row(self, row: sqlite3.Row) -> dict:
        out = dict(row)
        for key in self._DRAFT_JSON:
            out[key] = json.loads(out[key]) if out[key] else []
        return out

    def draft(self, draft_id: str) -> dict | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM drafts WHERE id = ?", (draft_id,)).fetchone()
        return self._draft_row(row) if row else None

    def drafts_for(self, customer_id: str, limit: int = 20) -> list[dict]:
        """A customer's drafts, newest first."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT * FROM drafts WHERE customer_id = ? ORDER BY created_at DESC, rowid DESC "
                "LIMIT ?", (customer_id, limit)).fetchall()
        return [self._draft_row(r) for r in rows]

    def profiles_of_customer(self, customer_id: str) -> list[dict]:
        """Profiles of the chat sessions linked to a customer, newest first."""
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM profiles WHERE customer_id = ? "
                                "ORDER BY updated_at DESC", (customer_id,)).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["facts"] = json.loads(item["facts"])
            item["behaviour"] = json.loads(item["behaviour"]) if item["behaviour"] else None
            out.append(item)
        return out

    # -- prompt studio: template versions, labels, audit log, tests (migration 5) ------
    # Plain SQL only; the rules (validation, conflicts, promotion gates) live in
    # assistant/prompts/versions.py.
    @contextmanager
    def _read(self, timeout: float) -> Iterator[sqlite3.Connection]:
        """A read connection with its own busy timeout (the running app reads with a short
        one, so a locked database never stalls a reply)."""
        conn = sqlite3.connect(self.path, timeout=timeout)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the write lock from its start (BEGIN IMMEDIATE):
        read-check-write sequences in it cannot interleave with another writer's."""
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @staticmethod
    def _latest_template_version(conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT MAX(version) FROM template_versions WHERE name = ?",
                           (name,)).fetchone()
        return int(row[0] or 0)

    @staticmethod
    def _insert_label_event(conn: sqlite3.Connection, name: str, label: str,
                            from_version: int | None, to_version: int | None, *, actor: str,
                            reason: str, kind: str, override: bool, share: float | None,
                            segment: str | None, now: str) -> int:
        cur = conn.execute(
            "INSERT INTO template_label_events (name, label, from_version, to_version, actor, "
            "reason, kind, override, share, segment, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, label, from_version, to_version, actor, reason, kind, int(override), share,
             segment, now))
        return int(cur.lastrowid)

    def add_template_version(self, name: str, body: str, *, sha: str, author: str, note: str,
                             base_version: int | None, label: str | None = None,
                             label_kind: str = "seed") -> int | None:
        """Insert version latest+1 if ``base_version`` is still the latest (0 or None: no
        version yet); None when it is not (a conflict). With ``label``, the label moves to
        the new version in the same transaction (with its audit event)."""
        now = _now()
        with self._immediate() as conn:
            latest = self._latest_template_version(conn, name)
            if latest != (base_version or 0):
                return None
            version = latest + 1
            try:
                conn.execute(
                    "INSERT INTO template_versions (name, version, body, sha, author, note, "
                    "created_at, base_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, version, body, sha, author, note, now, base_version or None))
            except sqlite3.IntegrityError:
                return None
            if label:
                self._upsert_label(conn, name, label, version, share=1.0, segment=None, now=now)
                self._insert_label_event(conn, name, label, None, version, actor=author,
                                         reason=note, kind=label_kind, override=False,
                                         share=1.0, segment=None, now=now)
        return version

    @staticmethod
    def _upsert_label(conn: sqlite3.Connection, name: str, label: str, version: int, *,
                      share: float, segment: str | None, now: str) -> None:
        conn.execute(
            "INSERT INTO template_labels (name, label, version, share, segment, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name, label) DO UPDATE SET "
            "version = excluded.version, share = excluded.share, segment = excluded.segment, "
            "updated_at = excluded.updated_at",
            (name, label, version, share, segment, now))

    def move_template_label(self, name: str, label: str, version: int | None, *, actor: str,
                            reason: str, kind: str, override: bool = False,
                            share: float = 1.0, segment: str | None = None,
                            expected_from: int | None = None,
                            check_from: bool = False) -> tuple[bool, int | None]:
        """Point ``label`` at ``version`` (None removes the label) and append the audit
        event, in one transaction. With ``check_from``, nothing happens unless the label
        still points at ``expected_from``. Returns (moved, the version it pointed at)."""
        now = _now()
        with self._immediate() as conn:
            row = conn.execute("SELECT version FROM template_labels WHERE name = ? AND "
                               "label = ?", (name, label)).fetchone()
            current = int(row[0]) if row else None
            if check_from and current != expected_from:
                return False, current
            if version is None:
                conn.execute("DELETE FROM template_labels WHERE name = ? AND label = ?",
                             (name, label))
            else:
                self._upsert_label(conn, name, label, version, share=share, segment=segment,
                                   now=now)
            self._insert_label_event(conn, name, label, current, version, actor=actor,
                                     reason=reason, kind=kind, override=override,
                                     share=share if version is not None else None,
                                     segment=segment, now=now)
        return True, current

    def template_names(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT DISTINCT name FROM template_versions ORDER BY name"
                                ).fetchall()
        return [r[0] for r in rows]

    def latest_template_version(self, name: str) -> int:
        """0 when the template has no version."""
        with self.connect() as conn:
            return self._latest_template_version(conn, name)

    def template_version(self, name: str, version: int, *,
                         timeout: float = 10) -> dict | None:
        with self._read(timeout) as conn:
            row = conn.execute("SELECT * FROM template_versions WHERE name = ? AND version = ?",
                               (name, version)).fetchone()
        return dict(row) if row else None

    def template_versions(self, name: str) -> list[dict]:
        """Every version of a template, oldest first (with bodies)."""
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM template_versions WHERE name = ? "
                                "ORDER BY version", (name,)).fetchall()
        return [dict(r) for r in rows]

    def template_labels(self, name: str | None = None, *, labels: tuple[str, ...] = (),
                        timeout: float = 10) -> list[dict]:
        """Labels (of one template, or all), each with the sha of the version it points at."""
        sql = ("SELECT l.name, l.label, l.version, l.share, l.segment, l.updated_at, v.sha "
               "FROM template_labels l LEFT JOIN template_versions v "
               "ON v.name = l.name AND v.version = l.version WHERE 1 = 1")
        args: list[object] = []
        if name is not None:
            sql += " AND l.name = ?"
            args.append(name)
        if labels:
            sql += f" AND l.label IN ({', '.join('?' for _ in labels)})"
            args += list(labels)
        with self._read(timeout) as conn:
            rows = conn.execute(sql + " ORDER BY l.name, l.label", args).fetchall()
        return [dict(r) for r in rows]

    def template_label_events(self, name: str, label: str | None = None) -> list[dict]:
        """The audit log of a template's label moves, oldest first."""
        sql = "SELECT * FROM template_label_events WHERE name = ?"
        args: list[object] = [name]
        if label is not None:
            sql += " AND label = ?"
            args.append(label)
        with self.connect() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [dict(r) for r in rows]

    def set_template_tests(self, name: str, cases_json: str, *, sha: str, author: str) -> None:
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO template_tests VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE "
                "SET cases = excluded.cases, sha = excluded.sha, "
                "updated_at = excluded.updated_at, author = excluded.author",
                (name, cases_json, sha, _now(), author))

    def template_tests(self, name: str) -> dict | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM template_tests WHERE name = ?",
                               (name,)).fetchone()
        return dict(row) if row else None

    def add_template_test_run(self, name: str, version: int, *, cases_sha: str, model: str,
                              results_json: str, pass_rate: float | None,
                              actor: str) -> dict:
        now = _now()
        with self.connect() as conn:
            cur = conn.execute(
                "INSERT INTO template_test_runs (name, version, cases_sha, model, results, "
                "pass_rate, created_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, cases_sha, model, results_json, pass_rate, now, actor))
            row = conn.execute("SELECT * FROM template_test_runs WHERE id = ?",
                               (cur.lastrowid,)).fetchone()
        return dict(row)

    def last_template_test_run(self, name: str, version: int) -> dict | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM template_test_runs WHERE name = ? AND version = ? "
                               "ORDER BY id DESC LIMIT 1", (name, version)).fetchone()
        return dict(row) if row else None

    # -- prompt studio metrics (assistant/prompts/metrics.py) --
    # Read-only; the metrics and tests live in assistant/prompts/metrics.py. Every query keeps
    # the calls of one template (``name``) made at/after ``since`` (when given) and outside
    # ``exclude_sessions`` (calls without a session are kept).
    @staticmethod
    def _template_call_filter(alias: str, name: str, since: str | None,
                              exclude_sessions: tuple[str, ...], segment: str | None = None
                              ) -> tuple[str, list[object]]:
        sql = f"{alias}.template_name = ?"
        args: list[object] = [name]
        if segment is not None:  # sessions whose saved profile is in that segment
            sql += (f" AND {alias}.session_id IN (SELECT session_id FROM profiles "
                    "WHERE segment = ?)")
            args.append(segment)
        if since is not None:
            sql += f" AND {alias}.created_at >= ?"
            args.append(since)
        if exclude_sessions:
            marks = ", ".join("?" for _ in exclude_sessions)
            sql += f" AND ({alias}.session_id IS NULL OR {alias}.session_id NOT IN ({marks}))"
            args += list(exclude_sessions)
        return sql, args

    def template_calls(self, name: str, *, since: str | None = None,
                       exclude_sessions: tuple[str, ...] = (),
                       segment: str | None = None) -> list[dict]:
        """The logged calls of a template, oldest first."""
        where, args = self._template_call_filter("c", name, since, exclude_sessions,
                                                 segment)
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT c.id, c.created_at, c.session_id, c.template_version, c.latency_ms, "
                "c.ttft_ms, c.prompt_tokens, c.completion_tokens, c.outcome, c.grounding "
                f"FROM llm_calls c WHERE {where} ORDER BY c.id", args).fetchall()
        return [dict(r) for r in rows]

    def template_call_feedback(self, name: str, *, since: str | None = None,
                               exclude_sessions: tuple[str, ...] = (),
                               segment: str | None = None) -> list[dict]:
        """Thumbs on the messages written by a template's calls: the latest vote per
        message (call_id, template_version, message_id, value)."""
        where, args = self._template_call_filter("c", name, since, exclude_sessions,
                                                 segment)
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT c.id AS call_id, c.template_version, m.id AS message_id, "
                "(SELECT f.value FROM feedback f WHERE f.message_id = m.id "
                " ORDER BY f.id DESC LIMIT 1) AS value "
                "FROM llm_calls c JOIN messages m ON m.llm_call_id = c.id "
                f"WHERE {where} AND EXISTS (SELECT 1 FROM feedback f WHERE f.message_id = m.id) "
                "ORDER BY m.id", args).fetchall()
        return [dict(r) for r in rows]

    def template_item_feedback(self, name: str, *, since: str | None = None,
                               exclude_sessions: tuple[str, ...] = (),
                               segment: str | None = None) -> list[dict]:
        """Reactions to recommended items, each attributed to the latest call of the
        template in the same session made at or before it (ties on time: the highest id);
        reactions without such a call are left out. ``since`` applies to that call."""
        where, args = self._template_call_filter("c", name, since, exclude_sessions,
                                                 segment)
        with self.connect() as conn:
            rows = conn.execute(
                "WITH attributed AS (SELECT r.id, r.session_id, r.item, r.value, r.created_at, "
                " (SELECT p.id FROM llm_calls p WHERE p.session_id = r.session_id "
                "  AND p.template_name = ? AND p.created_at <= r.created_at "
                "  ORDER BY p.created_at DESC, p.id DESC LIMIT 1) AS call_id "
                " FROM item_feedback r) "
                "SELECT a.id, a.session_id, a.item, a.value, a.created_at, a.call_id, "
                "c.template_version FROM attributed a JOIN llm_calls c ON c.id = a.call_id "
                f"WHERE {where} ORDER BY a.id", [name, *args]).fetchall()
        return [dict(r) for r in rows]

    def template_drafts(self, name: str, *, since: str | None = None,
                        exclude_sessions: tuple[str, ...] = ()) -> list[dict]:
        """Support drafts written with a template (``since``: the draft's creation), oldest
        first; drafts whose call ran in ``exclude_sessions`` are left out."""
        sql = ("SELECT d.* FROM drafts d "
               "LEFT JOIN llm_calls c ON c.id = d.llm_call_id WHERE d.template_name = ?")
        args: list[object] = [name]
        if since is not None:
            sql += " AND d.created_at >= ?"
            args.append(since)
        if exclude_sessions:
            marks = ", ".join("?" for _ in exclude_sessions)
            sql += f" AND (c.session_id IS NULL OR c.session_id NOT IN ({marks}))"
            args += list(exclude_sessions)
        with self.connect() as conn:
            rows = conn.execute(sql + " ORDER BY d.created_at, d.rowid", args).fetchall()
        return [dict(r) for r in rows]
