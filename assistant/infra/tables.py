"""The store's tables as SQLAlchemy Core objects: what ``Store``'s queries are built from.

The schema itself is made by the migrations (``assistant/infra/migrations``); these objects
describe the newest revision and must agree with it (``tests/test_store.py`` compares them
with a migrated database on both engines). Times are ISO-8601 text in UTC, as before.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()


def _id() -> Column:
    return Column("id", Integer, primary_key=True, autoincrement=True)


sessions = Table(
    "sessions", metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

llm_calls = Table(
    "llm_calls", metadata,
    _id(),
    Column("created_at", Text, nullable=False),
    Column("session_id", Text),
    Column("template_name", Text),
    Column("template_version", Text),
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("outcome", Text, nullable=False),
    Column("error", Text),
    Column("grounding", Text),
    Column("redactions", Integer),
    sqlite_autoincrement=True,
)

messages = Table(
    "messages", metadata,
    _id(),
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="ok"),
    Column("superseded", Integer, nullable=False, server_default="0"),
    Column("llm_call_id", Integer, ForeignKey("llm_calls.id")),
    Column("created_at", Text, nullable=False),
    CheckConstraint("role IN ('user', 'assistant')"),
    Index("messages_session", "session_id", "id"),
    sqlite_autoincrement=True,
)

feedback = Table(
    "feedback", metadata,
    _id(),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False),
    Column("value", Integer, nullable=False),
    Column("created_at", Text, nullable=False),
    CheckConstraint("value IN (-1, 1)"),
    sqlite_autoincrement=True,
)

questionnaire_states = Table(
    "questionnaire_states", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

profiles = Table(
    "profiles", metadata,
    Column("session_id", Text, ForeignKey("sessions.id"), primary_key=True),
    Column("customer_id", Text),
    Column("segment", Text),
    Column("document", Text, nullable=False),
    Column("facts", Text, nullable=False),
    Column("behaviour", Text),
    Column("updated_at", Text, nullable=False),
    Index("profiles_customer", "customer_id"),
)

item_feedback = Table(
    "item_feedback", metadata,
    _id(),
    Column("session_id", Text, ForeignKey("sessions.id"), nullable=False),
    Column("item", Text, nullable=False),
    Column("value", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    CheckConstraint("value IN ('like', 'dislike', 'not_for_me')"),
    Index("item_feedback_session", "session_id", "id"),
    sqlite_autoincrement=True,
)

drafts = Table(
    "drafts", metadata,
    Column("id", Text, primary_key=True),
    Column("created_at", Text, nullable=False),
    Column("agent", Text, nullable=False),
    Column("customer_id", Text),
    Column("ticket", Text, nullable=False),
    Column("intent", Text),
    Column("intent_confidence", Float),
    Column("tone", Text),
    Column("template_name", Text, nullable=False),
    Column("template_version", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("llm_call_id", Integer, ForeignKey("llm_calls.id")),
    Column("draft", Text, nullable=False),
    Column("flags", Text, nullable=False, server_default="[]"),
    Column("citations", Text, nullable=False, server_default="[]"),
    Column("injection", Text, nullable=False, server_default="[]"),
    Column("status", Text, nullable=False),
    Column("final_text", Text),
    Column("final_agent", Text),
    Column("edit_diff", Text),
    Column("feedback", Integer),
    Column("feedback_reason", Text),
    Column("updated_at", Text, nullable=False),
    Column("resolved_at", Text),  # revision 0003: the agent marked the ticket resolved
    Column("resolved_by", Text),
    CheckConstraint("status IN ('clean', 'flagged', 'discarded', 'final')"),
    CheckConstraint("feedback IN (-1, 1)"),
    Index("drafts_customer", "customer_id", "created_at"),
)

template_versions = Table(
    "template_versions", metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("sha", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("base_version", Integer),
    CheckConstraint("version >= 1"),
    CheckConstraint("trim(note) <> ''"),
    UniqueConstraint("name", "version"),
    sqlite_autoincrement=True,
)

template_labels = Table(
    "template_labels", metadata,
    Column("name", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("share", Float, nullable=False, server_default="1.0"),
    Column("segment", Text),
    Column("updated_at", Text, nullable=False),
    PrimaryKeyConstraint("name", "label"),
    ForeignKeyConstraint(["name", "version"],
                         ["template_versions.name", "template_versions.version"]),
    CheckConstraint("share >= 0 AND share <= 1"),
)

template_label_events = Table(
    "template_label_events", metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("kind", Text, nullable=False),
    Column("override", Integer, nullable=False, server_default="0"),
    Column("share", Float),
    Column("segment", Text),
    Column("created_at", Text, nullable=False),
    CheckConstraint("kind IN ('seed', 'set', 'rollback', 'remove', 'sync')"),
    Index("template_label_events_name", "name", "label", "id"),
    sqlite_autoincrement=True,
)

template_tests = Table(
    "template_tests", metadata,
    Column("name", Text, primary_key=True),
    Column("cases", Text, nullable=False),
    Column("sha", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("author", Text, nullable=False),
)

template_test_runs = Table(
    "template_test_runs", metadata,
    _id(),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("cases_sha", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("results", Text, nullable=False),
    Column("pass_rate", Float),
    Column("created_at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Index("template_test_runs_version", "name", "version", "id"),
    sqlite_autoincrement=True,
)

attempts = Table(
    "attempts", metadata,
    _id(),
    Column("key", Text, nullable=False),
    Column("at", Float, nullable=False),
    Index("attempts_key", "key", "at"),
    sqlite_autoincrement=True,
)

link_codes = Table(
    "link_codes", metadata,
    Column("session_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("email_hash", Text, nullable=False),
    Column("code_hash", Text, nullable=False),
    Column("expires", Float, nullable=False),
)

privacy_audit = Table(
    "privacy_audit", metadata,
    _id(),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("details", Text, nullable=False, server_default="{}"),
    CheckConstraint("action IN ('export', 'erase', 'purge')"),
    sqlite_autoincrement=True,
)

events = Table(
    "events", metadata,
    _id(),
    Column("at", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("session_id", Text),
    Column("customer_id", Text),
    Column("segment", Text),
    Column("item", Text),
    Column("position", Integer),
    Column("variant", Text),
    Column("template_version", Text),
    Column("value", Text),
    CheckConstraint("kind IN ('impression', 'reaction', 'click', 'satisfaction', "
                    "'exposure')"),
    Index("events_kind_at", "kind", "at"),
    Index("events_session", "session_id", "id"),
    Index("events_customer", "customer_id"),
    sqlite_autoincrement=True,
)

experiments = Table(
    "experiments", metadata,
    Column("name", Text, primary_key=True),
    Column("kind", Text, nullable=False, server_default="recommender"),
    Column("segment", Text),
    Column("arms", Text, nullable=False),
    Column("metric", Text, nullable=False),
    Column("base_rate", Float, nullable=False),
    Column("mde", Float, nullable=False),
    Column("planned", Integer, nullable=False),
    Column("share", Float, nullable=False),
    Column("status", Text, nullable=False),
    Column("started_at", Text, nullable=False),
    Column("started_by", Text, nullable=False),
    Column("stopped_at", Text),
    Column("stopped_by", Text),
    Column("reason", Text),
    CheckConstraint("kind IN ('recommender', 'policy')"),
    CheckConstraint("(kind = 'policy') = (segment IS NOT NULL)"),
    CheckConstraint("status IN ('running', 'stopped')"),
    Index("experiments_one_running", "kind", unique=True,
          sqlite_where=text("status = 'running'"),
          postgresql_where=text("status = 'running'")),
)

# revision 0002: shared state of several app processes
users = Table(
    "users", metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    CheckConstraint("role IN ('agent', 'ops', 'admin')"),
)

leases = Table(
    "leases", metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("acquired_at", Text, nullable=False),
    Column("expires", Float, nullable=False),
)
