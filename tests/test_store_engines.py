"""The store on both engines: the embedded SQLite file and a real PostgreSQL server (a
throwaway cluster started by the ``pg_cluster`` fixture). The same calls, the same answers;
the append-only rules, optimistic concurrency and migrations hold on both."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect

from assistant.core.errors import StoreError
from assistant.core.schemas import LLMCall
from assistant.infra import tables
from assistant.infra.store import Store, head_revision

LEGACY = Path(__file__).parent / "data" / "legacy-step11.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> Path | str:
    if request.param == "sqlite":
        return tmp_path / "t.sqlite3"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(location) -> Store:
    s = Store(location)
    yield s
    s.close()


def test_the_same_answers_on_both_engines(store: Store) -> None:
    sid = store.create_session().id
    store.add_message(sid, "user", "a present for my mum")
    call = store.log_llm_call(LLMCall(provider="local", model="m", outcome="ok",
                                      template_name="chat", template_version="v1",
                                      session_id=sid))
    reply = store.add_message(sid, "assistant", "Candles", llm_call_id=call)
    store.add_feedback(reply.id, -1)
    store.add_feedback(reply.id, 1)
    assert [(m.role, m.feedback) for m in store.messages(sid)] == [("user", None),
                                                                   ("assistant", 1)]
    store.save_questionnaire(sid, '{"answers":{}}')
    store.save_questionnaire(sid, '{"answers":{"budget":20}}')  # an upsert
    assert store.load_questionnaire(sid) == '{"answers":{"budget":20}}'
    for segment in ("Loyal", "Champions"):
        store.save_profile(sid, document="d", facts={"budget": 20}, customer_id="12347",
                           segment=segment, behaviour=None)
    assert store.load_profile(sid)["segment"] == "Champions"
    assert store.sessions_of_customer("12347") == [sid]
    store.add_item_feedback(sid, "85123A", "dislike")
    store.add_item_feedback(sid, "85123A", "like")
    assert store.item_feedback(sid) == {"85123A": "like"}
    assert [r["value"] for r in store.template_item_feedback("chat")] == ["dislike", "like"]
    assert [r["value"] for r in store.template_call_feedback("chat")] == [1]
    assert [r["id"] for r in store.template_calls("chat", segment="Champions")] == [call]
    assert store.template_calls("chat", exclude_sessions=(sid,)) == []
    store.add_events([{"kind": "impression", "session_id": sid, "item": "i", "position": 1},
                      {"kind": "click", "session_id": sid, "item": "i"}])
    assert [e["kind"] for e in store.events(kinds=("click",))] == ["click"]
    store.save_link_code(sid, customer_id="1", email_hash="e", code_hash="a", expires=1.0)
    store.save_link_code(sid, customer_id="1", email_hash="e", code_hash="b", expires=2.0)
    assert store.link_code(sid)["code_hash"] == "b"
    store.add_attempt("k", 10.0)
    store.add_attempt("k", 5.0)
    assert store.attempt_times("k", 0) == [5.0, 10.0] and store.forget_attempts(7) == 1
    data = store.session_data(sid)
    assert len(data["messages"]) == 2 and data["feedback"] and data["events"]
    counts = store.erase_session(sid)
    assert counts["messages"] == 2 and counts["events"] == 2 and counts["session"] == 1
    assert counts["model_calls_unlinked"] == 1 and store.get_session(sid) is None
    assert store.template_item_feedback("chat") == []


def test_drafts_keep_their_order(store: Store) -> None:
    ids = [store.add_draft(agent="a", customer_id="c", ticket=f"t{i}", template_name="r",
                           template_version="1", model="m", draft="d", status="clean")
           for i in range(5)]
    assert [d["id"] for d in store.drafts_for("c")] == ids[::-1]
    assert [d["id"] for d in store.template_drafts("r")] == ids
    store.update_draft(ids[0], status="final", final_text="x")
    assert store.draft(ids[0])["status"] == "final" and store.erase_drafts_of("c") == 5


def test_one_running_experiment_per_kind(store: Store) -> None:
    common = dict(arms={"A": "served", "B": "popularity"}, metric="ctr", base_rate=0.1,
                  mde=0.02, planned=10, share=1.0, actor="olivia")
    store.add_experiment(name="e1", **common)
    with pytest.raises(StoreError, match="cannot start"):
        store.add_experiment(name="e2", **common)
    store.add_experiment(name="p1", kind="policy", segment="At Risk", **common)
    assert store.stop_experiment("e1", actor="olivia") is True
    assert store.stop_experiment("e1", actor="olivia") is False  # twice: nothing to stop
    store.add_experiment(name="e2", **common)
    assert [x["name"] for x in store.experiments()] == ["e2", "p1", "e1"]
    assert store.running_experiment()["name"] == "e2"


@pytest.mark.parametrize("sql", [
    "UPDATE template_versions SET body = 'x'",
    "DELETE FROM template_versions",
    "UPDATE template_label_events SET actor = 'x'",
    "DELETE FROM template_label_events",
    "UPDATE privacy_audit SET actor = 'x'",
    "DELETE FROM privacy_audit",
    "UPDATE events SET kind = 'click'",
])
def test_append_only_tables_refuse_changes(store: Store, sql: str) -> None:
    store.add_template_version("chat", "body", sha="s", author="o", note="n", base_version=0,
                               label="production")
    store.audit_privacy(actor="o", action="export", subject="s", details={})
    store.add_events([{"kind": "impression", "session_id": "s"}])
    with pytest.raises(StoreError, match="immutable|append-only"), store.connect() as conn:
        conn.exec_driver_sql(sql)
    assert store.template_version("chat", 1)["body"] == "body"
    assert store.privacy_audit()[0]["actor"] == "o"


def test_events_may_be_deleted_with_their_session(store: Store) -> None:
    store.add_events([{"kind": "impression", "session_id": "s", "customer_id": "c"}])
    assert store.erase_events_of("c") == 1 and store.events() == []


def _race(n: int, work) -> list:
    """Run ``work(i)`` on ``n`` threads released together; their results in order."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    return results


def test_optimistic_concurrency_under_concurrent_writers(store: Store) -> None:
    """Eight editors save on top of version 1 at once: one gets version 2, the others a
    conflict; eight label moves from 1 at once: one moves, the others see it moved."""
    store.add_template_version("chat", "v1", sha="1", author="o", note="n", base_version=0,
                               label="production")
    saved = _race(8, lambda i: store.add_template_version(
        "chat", f"body {i}", sha=str(i), author=f"e{i}", note="n", base_version=1))
    assert sorted(saved, key=str) == [2] + [None] * 7
    assert store.latest_template_version("chat") == 2
    moves = _race(8, lambda i: store.move_template_label(
        "chat", "production", 2, actor=f"e{i}", reason="r", kind="set",
        expected_from=1, check_from=True))
    assert sorted(moved for moved, _ in moves) == [False] * 7 + [True]
    events = store.template_label_events("chat", "production")
    assert [(e["from_version"], e["to_version"]) for e in events] == [(None, 1), (1, 2)]


def test_two_processes_migrating_at_once_migrate_once(location) -> None:
    stores = _race(4, lambda i: Store(location))
    assert {s.revision() for s in stores} == {head_revision()}
    with stores[0].connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM alembic_version").scalar() == 1
    for s in stores:
        s.close()


def test_an_interrupted_migration_is_completed_by_the_next_start(location, monkeypatch
                                                                 ) -> None:
    """The upgrade runs in one transaction: a failure halfway (here: making the append-only
    triggers, the baseline's last step) leaves no table behind, and the next start
    completes it."""
    from alembic import op

    real = op.execute

    def failing(sql, *args, **kwargs):
        if "TRIGGER" in str(sql):
            raise RuntimeError("the machine was switched off")
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(op, "execute", failing)
    with pytest.raises(RuntimeError, match="switched off"):
        Store(location)
    monkeypatch.undo()
    store = Store(location)
    assert store.revision() == head_revision()
    with store.connect() as conn:
        names = set(inspect(conn).get_table_names())
    assert set(tables.metadata.tables) <= names
    store.close()


def test_tables_module_matches_the_migrated_schema(store: Store) -> None:
    with store.connect() as conn:
        found = inspect(conn)
        for table in tables.metadata.sorted_tables:
            columns = {c["name"] for c in found.get_columns(table.name)}
            assert columns == set(table.columns.keys()), table.name
            indexes = {i["name"] for i in found.get_indexes(table.name)}
            assert {i.name for i in table.indexes} <= indexes, table.name


def test_a_file_of_the_last_code_before_alembic_upgrades_without_loss(tmp_path) -> None:
    """tests/data/legacy-step11.sqlite3 was written by Tailor d0f020c's own Store (every
    table has a row). Opened by this code, it is stamped and upgraded; every row reads back
    through today's methods, the old rules still hold and new writes work."""
    db = tmp_path / "tailor.sqlite3"
    shutil.copy(LEGACY, db)
    store = Store(db)
    assert store.revision() == head_revision()
    [sid] = [r[0] for r in sqlite3.connect(db).execute("SELECT id FROM sessions")]
    assert [(m.role, m.feedback) for m in store.messages(sid)] == [("user", None),
                                                                   ("assistant", 1)]
    assert store.load_questionnaire(sid) == '{"answers":{"occasion":"birthday"}}'
    assert store.load_profile(sid)["facts"] == {"budget": 20}
    assert store.item_feedback(sid) == {"85123A": "like"}
    assert [e["item"] for e in store.events()] == ["85123A"]
    assert store.running_experiment()["arms"] == {"A": "served", "B": "popularity"}
    assert store.attempt_times("login:olivia", 0) == [1.0e9]
    assert store.link_code(sid)["customer_id"] == "12347"
    assert store.privacy_audit()[0]["details"] == {"rows": 3}
    [draft] = store.drafts_for("12347")
    assert draft["final_text"] == "It is on its way!"
    assert store.template_labels("recommendation")[0]["version"] == 1
    assert store.template_tests("recommendation")["sha"] == "t1"
    assert store.last_template_test_run("recommendation", 1)["pass_rate"] == 1.0
    assert store.llm_calls()[0].template_name == "recommendation"
    with pytest.raises(StoreError, match="immutable"), store.connect() as conn:
        conn.exec_driver_sql("UPDATE template_versions SET body = 'x'")
    assert store.add_template_version("recommendation", "v2", sha="d", author="o", note="n",
                                      base_version=1) == 2
    store.add_message(sid, "user", "and for my dad?")
    assert len(store.messages(sid)) == 3


def test_a_new_file_and_an_upgraded_one_have_the_same_schema(tmp_path) -> None:
    def schema(path: Path) -> dict[str, set]:
        conn = sqlite3.connect(path)
        out: dict[str, set] = {}
        for kind, name, table in conn.execute("SELECT type, name, tbl_name FROM sqlite_master"
                                              " WHERE name NOT LIKE 'sqlite_%'"):
            if name in ("schema_migrations", "alembic_version"):
                continue
            cols = {r[1] for r in conn.execute(f"PRAGMA table_info({name})")} \
                if kind == "table" else set()
            out[f"{kind} {name} on {table}"] = cols
        conn.close()
        return out

    shutil.copy(LEGACY, tmp_path / "old.sqlite3")
    Store(tmp_path / "old.sqlite3").close()
    Store(tmp_path / "new.sqlite3").close()
    assert schema(tmp_path / "new.sqlite3") == schema(tmp_path / "old.sqlite3")


def test_a_wrong_database_url_names_the_setting_not_the_password() -> None:
    for url, problem in [("mysql://u:hunter2@db/tailor", "does not support"),
                         ("postgresql://u:hunter2@db:notaport/tailor", "not a database URL")]:
        with pytest.raises(StoreError) as exc:
            Store(url)
        assert "TAILOR_DATABASE_URL" in exc.value.message and problem in exc.value.message
        assert "hunter2" not in exc.value.message + exc.value.hint


def test_a_wrong_password_or_database_is_a_clear_error_at_once(pg_cluster) -> None:
    """Waiting will not mend these: no retries, one message naming the setting."""
    import time

    for url, problem in [(pg_cluster.url(password="hunter2"), "password"),
                         (pg_cluster.url("nosuchdb"), "does not exist")]:
        start = time.monotonic()
        with pytest.raises(StoreError) as exc:
            Store(url, connect_timeout=60)
        assert time.monotonic() - start < 10  # not the 60 s of retries
        text = exc.value.message + exc.value.hint
        assert "TAILOR_DATABASE_URL" in text and problem in text and "hunter2" not in text


def test_a_database_down_at_start_is_retried_then_explained(caplog) -> None:
    from tests.apprunner import free_port

    url = f"postgresql://tailor:hunter2@127.0.0.1:{free_port()}/tailor"
    with pytest.raises(StoreError) as exc:
        Store(url, connect_timeout=2)
    assert "Cannot reach" in exc.value.message and "after 2 s" in exc.value.message
    assert "hunter2" not in exc.value.message
    assert "retrying in" in caplog.text  # it waited with backoff before giving up


def test_a_connection_lost_mid_request_writes_nothing(pg_url: str) -> None:
    """The server drops the connection between two statements of one transaction: the
    caller gets the store's polite error and neither statement is kept; the next call
    gets a fresh connection."""
    import psycopg

    store = Store(pg_url)
    sid = store.create_session().id
    with pytest.raises(StoreError, match="not available"), store.connect() as conn:
        conn.exec_driver_sql("INSERT INTO messages (session_id, role, content, created_at) "
                             "VALUES (%s, 'user', 'lost', 'now')", (sid,))
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with psycopg.connect(pg_url.replace("postgresql://", "postgresql://", 1),
                             autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.exec_driver_sql("UPDATE sessions SET updated_at = 'x'")
    assert store.messages(sid) == []
    assert store.get_session(sid).updated_at != "x"
    store.close()


def test_a_lease_has_one_holder_until_released_or_expired(store: Store) -> None:
    assert store.take_lease("build", "a", 60) == "a"
    assert store.take_lease("build", "b", 60) == "a"  # held: b waits
    assert store.take_lease("build", "a", 60) == "a"  # the holder renews it
    assert store.release_lease("build", "b") is False
    assert store.release_lease("build", "a") is True
    assert store.take_lease("build", "b", -1) == "b"  # taken, already expired
    assert store.take_lease("build", "a", 60) == "a"  # so a may take it


def test_rate_counts_are_shared_through_the_store(location) -> None:
    """Two stores (as two app processes) count calls of one key together."""
    first, second = Store(location), Store(location)
    hits = [s.hit_rate("rate:1.2.3.4", 1000.0 + i, 3, 60) for i, s in
            enumerate([first, second, first, second])]
    assert hits == [True, True, True, False]
    assert second.hit_rate("rate:1.2.3.4", 1061.5, 3, 60) is True  # the oldest left
    first.close()
    second.close()
