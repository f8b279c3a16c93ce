import sqlite3

import pytest

from assistant.core.errors import StoreError
from assistant.core.schemas import LLMCall
from assistant.infra.migrations import legacy
from assistant.infra.store import Store, head_revision


def test_migrations_run_once_and_are_recorded(tmp_path):
    db = tmp_path / "t.sqlite3"
    store = Store(db)
    assert store.revision() == head_revision()
    assert store.migrate() == 0  # second run: nothing pending
    tables = {r[0] for r in sqlite3.connect(db).execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "messages", "llm_calls", "feedback", "alembic_version"} <= tables
    assert "schema_migrations" not in tables  # the legacy table is only in old files


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
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM messages").scalar() == 2


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
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError) as exc:
        Store(db)
    assert "newer" in exc.value.message and exc.value.hint


def test_newer_legacy_schema_is_refused(tmp_path):
    db = tmp_path / "t.sqlite3"
    legacy.upgrade_legacy(db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'x')")
    with pytest.raises(StoreError, match="newer"):
        Store(db)


def test_garbage_file_is_a_clear_error(tmp_path):
    db = tmp_path / "t.sqlite3"
    db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError) as exc:
        Store(db)
    assert str(db) in exc.value.message


def test_migration_11_keeps_events_and_experiments(tmp_path, monkeypatch):
    """A file at schema 10 (experiments and events written by that code) upgrades to the
    policy-experiment schema with its rows, its append-only trigger and one running
    experiment per kind."""
    db = tmp_path / "t.sqlite3"
    monkeypatch.setattr(legacy, "STEPS", legacy.STEPS[:10])
    legacy.upgrade_legacy(db)
    monkeypatch.undo()
    assert legacy.legacy_step(db) == 10
    with sqlite3.connect(db) as conn:  # as schema 10's code wrote them
        conn.execute("INSERT INTO events (at, kind, session_id, item, position, variant) "
                     "VALUES ('2026-01-01T00:00:00.000+00:00', 'impression', 's', 'i', 1, "
                     "'e/A')")
        conn.execute("INSERT INTO experiments (name, arms, metric, base_rate, mde, planned, "
                     "share, status, started_at, started_by) VALUES ('e', "
                     "'{\"A\": \"served\", \"B\": \"served\"}', 'ctr', 0.1, 0.05, 100, 1.0, "
                     "'running', '2026-01-01T00:00:00', 'olivia')")
    new = Store(db)
    assert new.revision() == head_revision() and legacy.legacy_step(db) is None
    assert [(e["kind"], e["variant"]) for e in new.events()] == [("impression", "e/A")]
    assert new.running_experiment()["name"] == "e"
    assert new.experiment("e")["kind"] == "recommender"
    new.add_experiment(name="p", arms={"A": "served", "B": "v"}, metric="conversion",
                       base_rate=0.3, mde=0.1, planned=50, share=1.0, actor="olivia",
                       kind="policy", segment="At Risk")
    assert new.running_experiment("policy")["segment"] == "At Risk"
    with pytest.raises(StoreError, match="cannot start"):
        new.add_experiment(name="p2", arms={}, metric="conversion", base_rate=0.3, mde=0.1,
                           planned=50, share=1.0, actor="olivia", kind="policy",
                           segment="Lost")
    new.add_events([{"kind": "exposure", "customer_id": "c", "variant": "p/A"}])
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), sqlite3.connect(db) as conn:
        conn.execute("UPDATE events SET kind = 'click'")
