"""The hand-rolled SQLite migrations of Tailor before Alembic (steps 1-11), frozen.

A database file made by an earlier Tailor records its step in ``schema_migrations``.
``upgrade_legacy`` brings it to step 11, which is exactly the schema of Alembic's baseline
revision ``0001``; ``Store.migrate`` then stamps it and goes on with Alembic. Never edit.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

STEPS: list[str] = [
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


def legacy_step(path: Path) -> int | None:
    """The legacy step an SQLite file is at; None when it has no legacy migrations table
    (a new file, or one Alembic manages)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        names = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_migrations" not in names or "alembic_version" in names:
            return None
        return int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
                   or 0)
    finally:
        conn.close()


def upgrade_legacy(path: Path) -> int:
    """Apply the legacy steps a file has not had, each in its own transaction, as the old
    code did; returns how many ran. A file newer than step 11 is refused by the caller."""
    with sqlite3.connect(path) as conn:  # the old code made it first, as here
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                     "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    conn.close()
    current = legacy_step(path) or 0
    for step in range(current + 1, len(STEPS) + 1):
        conn = sqlite3.connect(path, timeout=30)
        try:
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            conn.executescript("BEGIN IMMEDIATE;\n" + STEPS[step - 1]
                               + f"\nINSERT INTO schema_migrations VALUES ({step}, '{now}');"
                               "\nCOMMIT;")
        except sqlite3.Error:
            conn.rollback()
            raise
        finally:
            conn.close()
    return max(len(STEPS) - current, 0)
