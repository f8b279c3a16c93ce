import sqlite3

import pytest

from assistant.core.errors import StoreError
from assistant.core.schemas import LLMCall
from assistant.infra.store import MIGRATIONS, Store


def test_migrations_run_once_and_are_recorded(tmp_path):
    db = tmp_path / "t.sqlite3"
    store = Store(db)
    assert store.schema_version() == len(MIGRATIONS)
    assert store.migrate() == 0  # second run: nothing pending
    tables = {r[0] for r in sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "messages", "llm_calls", "feedback", "schema_migrations"} <= tables


def test_data_survives_reopen(tmp_path):
    db = tmp_path / "t.sqlite3"
    s1 = Store(db)
    sid = s1.create_session().id
    s1.add_message(sid, "user", "hi")
    msg = s1.add_message(sid, "assistant", "hello")
    s1.add_feedback(msg.id, -1)
    s1.add_feedback(msg.id, 1)
    s2 = Store(db)
    msgs = s2.messages(sid)
    assert [(m.role, m.content) for m in msgs] == [("user", "hi"), ("assistant", "hello")]
    assert msgs[1].feedback == 1  # the latest vote counts


def test_superseded_messages_are_hidden_not_deleted(tmp_path):
    store = Store(tmp_path / "t.sqlite3")
    sid = store.create_session().id
    store.add_message(sid, "user", "hi")
    old = store.add_message(sid, "assistant", "first try")
    store.supersede(old.id)
    assert [m.content for m in store.messages(sid)] == ["hi"]
    with store.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2


def test_llm_call_log_roundtrip(tmp_path):
    store = Store(tmp_path / "t.sqlite3")
    cid = store.log_llm_call(LLMCall(provider="local", model="m", latency_ms=12.5, ttft_ms=3.0,
                                     prompt_tokens=10, completion_tokens=5, outcome="ok",
                                     template_name="chat", template_version="file-abc"))
    [row] = store.llm_calls()
    assert row.id == cid and row.template_version == "file-abc" and row.completion_tokens == 5


def test_newer_schema_is_refused(tmp_path):
    db = tmp_path / "t.sqlite3"
    Store(db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'x')")
    with pytest.raises(StoreError) as exc:
        Store(db)
    assert "newer" in exc.value.message and exc.value.hint


def test_garbage_file_is_a_clear_error(tmp_path):
    db = tmp_path / "t.sqlite3"
    db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError) as exc:
        Store(db)
    assert str(db) in exc.value.message
