"""Baseline: the schema as the hand-rolled migrations 1-11 left it (Tailor up to 2026-12).

A new database gets it here; an SQLite file made by an earlier Tailor is brought to
legacy step 11 by ``legacy.py`` and stamped with this revision (``Store.migrate``).
Frozen: never edit a shipped revision, add a new one.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: (table, message, also refuse DELETE): rows that are never changed
APPEND_ONLY = (
    ("template_versions", "template versions are immutable", True),
    ("template_label_events", "the label audit log is append-only", True),
    ("privacy_audit", "the privacy audit log is append-only", True),
    ("events", "the event log is append-only", False),
)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )

    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("session_id", sa.Text),
        sa.Column("template_name", sa.Text),
        sa.Column("template_version", sa.Text),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("grounding", sa.Text),
        sa.Column("redactions", sa.Integer),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.Text, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="ok"),
        sa.Column("superseded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("llm_call_id", sa.Integer, sa.ForeignKey("llm_calls.id")),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant')"),
        sa.Index("messages_session", "session_id", "id"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("value", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.CheckConstraint("value IN (-1, 1)"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "questionnaire_states",
        sa.Column("session_id", sa.Text, sa.ForeignKey("sessions.id"), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    )

    op.create_table(
        "profiles",
        sa.Column("session_id", sa.Text, sa.ForeignKey("sessions.id"), primary_key=True),
        sa.Column("customer_id", sa.Text),
        sa.Column("segment", sa.Text),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("facts", sa.Text, nullable=False),
        sa.Column("behaviour", sa.Text),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Index("profiles_customer", "customer_id"),
    )

    op.create_table(
        "item_feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.Text, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("item", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.CheckConstraint("value IN ('like', 'dislike', 'not_for_me')"),
        sa.Index("item_feedback_session", "session_id", "id"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "drafts",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("agent", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text),
        sa.Column("ticket", sa.Text, nullable=False),
        sa.Column("intent", sa.Text),
        sa.Column("intent_confidence", sa.Float),
        sa.Column("tone", sa.Text),
        sa.Column("template_name", sa.Text, nullable=False),
        sa.Column("template_version", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("llm_call_id", sa.Integer, sa.ForeignKey("llm_calls.id")),
        sa.Column("draft", sa.Text, nullable=False),
        sa.Column("flags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("citations", sa.Text, nullable=False, server_default="[]"),
        sa.Column("injection", sa.Text, nullable=False, server_default="[]"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("final_text", sa.Text),
        sa.Column("final_agent", sa.Text),
        sa.Column("edit_diff", sa.Text),
        sa.Column("feedback", sa.Integer),
        sa.Column("feedback_reason", sa.Text),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.CheckConstraint("status IN ('clean', 'flagged', 'discarded', 'final')"),
        sa.CheckConstraint("feedback IN (-1, 1)"),
        sa.Index("drafts_customer", "customer_id", "created_at"),
    )

    op.create_table(
        "template_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("sha", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("base_version", sa.Integer),
        sa.CheckConstraint("version >= 1"),
        sa.CheckConstraint("trim(note) <> ''"),
        sa.UniqueConstraint("name", "version"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "template_labels",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("share", sa.Float, nullable=False, server_default="1.0"),
        sa.Column("segment", sa.Text),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", "label"),
        sa.ForeignKeyConstraint(["name", "version"],
                             ["template_versions.name", "template_versions.version"]),
        sa.CheckConstraint("share >= 0 AND share <= 1"),
    )

    op.create_table(
        "template_label_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("override", sa.Integer, nullable=False, server_default="0"),
        sa.Column("share", sa.Float),
        sa.Column("segment", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.CheckConstraint("kind IN ('seed', 'set', 'rollback', 'remove', 'sync')"),
        sa.Index("template_label_events_name", "name", "label", "id"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "template_tests",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("cases", sa.Text, nullable=False),
        sa.Column("sha", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
    )

    op.create_table(
        "template_test_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("cases_sha", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("results", sa.Text, nullable=False),
        sa.Column("pass_rate", sa.Float),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Index("template_test_runs_version", "name", "version", "id"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Index("attempts_key", "key", "at"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "link_codes",
        sa.Column("session_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("email_hash", sa.Text, nullable=False),
        sa.Column("code_hash", sa.Text, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )

    op.create_table(
        "privacy_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.CheckConstraint("action IN ('export', 'erase', 'purge')"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("session_id", sa.Text),
        sa.Column("customer_id", sa.Text),
        sa.Column("segment", sa.Text),
        sa.Column("item", sa.Text),
        sa.Column("position", sa.Integer),
        sa.Column("variant", sa.Text),
        sa.Column("template_version", sa.Text),
        sa.Column("value", sa.Text),
        sa.CheckConstraint("kind IN ('impression', 'reaction', 'click', 'satisfaction', "
                        "'exposure')"),
        sa.Index("events_kind_at", "kind", "at"),
        sa.Index("events_session", "session_id", "id"),
        sa.Index("events_customer", "customer_id"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "experiments",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False, server_default="recommender"),
        sa.Column("segment", sa.Text),
        sa.Column("arms", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("base_rate", sa.Float, nullable=False),
        sa.Column("mde", sa.Float, nullable=False),
        sa.Column("planned", sa.Integer, nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("started_by", sa.Text, nullable=False),
        sa.Column("stopped_at", sa.Text),
        sa.Column("stopped_by", sa.Text),
        sa.Column("reason", sa.Text),
        sa.CheckConstraint("kind IN ('recommender', 'policy')"),
        sa.CheckConstraint("(kind = 'policy') = (segment IS NOT NULL)"),
        sa.CheckConstraint("status IN ('running', 'stopped')"),
        sa.Index("experiments_one_running", "kind", unique=True,
              sqlite_where=sa.text("status = 'running'"),
              postgresql_where=sa.text("status = 'running'")),
    )


    _guards()


def _guards() -> None:
    """Triggers that refuse changes to append-only tables (named as the SQLite ones were)."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(
            "CREATE FUNCTION tailor_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '%', TG_ARGV[0] "
            "USING ERRCODE = 'integrity_constraint_violation'; END $$")
    for table, message, deletes in APPEND_ONLY:
        if postgres:
            events = "UPDATE OR DELETE" if deletes else "UPDATE"
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE {events} ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION tailor_refuse('{message}')")
            if deletes:  # TRUNCATE skips row triggers
                op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                           f"FOR EACH STATEMENT EXECUTE FUNCTION tailor_refuse('{message}')")
            continue
        op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
        if deletes:
            op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{message}'); END")


def downgrade() -> None:
    raise NotImplementedError("Tailor's migrations are forward-only.")
