"""The store's cost per operation: SQLAlchemy Core on SQLite and on PostgreSQL against the
same statements on a bare ``sqlite3`` connection (the floor; what the store was before it
moved to SQLAlchemy), in the same run.

One chat turn's writes and reads, as the app does them: add the visitor's message (insert +
touch the session), add the reply, read the conversation back (with each reply's latest
vote), save the questionnaire state (an upsert). Run on 1 and on 8 threads (Gradio's workers),
each thread its own sessions.

    .venv/bin/python bench/store.py [--turns 400] [--no-postgres]

PostgreSQL is a throwaway cluster of Debian's server (tests/pgcluster.py), on loopback with
fsync off, as in the tests. Prints turns per second and the ratio to the floor.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.infra.store import Store  # noqa: E402


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class BareSqlite:
    """The floor: the same statements on one ``sqlite3`` connection per thread, the
    pragmas the store sets, no SQLAlchemy (the schema made by the store)."""

    def __init__(self, path: Path) -> None:
        Store(path).close()
        self.path = path
        self.local = threading.local()

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10)
            for pragma in ("foreign_keys = ON", "synchronous = NORMAL", "secure_delete = ON"):
                conn.execute(f"PRAGMA {pragma}")
            self.local.conn = conn
        return conn

    def create_session(self) -> str:
        sid, now = uuid.uuid4().hex, _now()
        with self.conn() as c:
            c.execute("INSERT INTO sessions VALUES (?, ?, ?)", (sid, now, now))
        return sid

    def turn(self, sid: str, i: int) -> None:
        c = self.conn()
        for role, text in (("user", f"message {i}"), ("assistant", f"reply {i}")):
            now = _now()
            with c:
                c.execute("INSERT INTO messages (session_id, role, content, status, "
                          "created_at) VALUES (?, ?, ?, 'ok', ?)", (sid, role, text, now))
                c.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, sid))
        with c:
            c.execute("SELECT m.id, m.role, m.content, (SELECT value FROM feedback f WHERE "
                      "f.message_id = m.id ORDER BY f.id DESC LIMIT 1) FROM messages m "
                      "WHERE session_id = ? AND superseded = 0 ORDER BY id", (sid,)).fetchall()
        with c:
            c.execute("INSERT INTO questionnaire_states VALUES (?, ?, ?) ON CONFLICT"
                      "(session_id) DO UPDATE SET state = excluded.state, "
                      "updated_at = excluded.updated_at", (sid, f'{{"n": {i}}}', _now()))


class ViaStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create_session(self) -> str:
        return self.store.create_session().id

    def turn(self, sid: str, i: int) -> None:
        self.store.add_message(sid, "user", f"message {i}")
        self.store.add_message(sid, "assistant", f"reply {i}")
        self.store.messages(sid)
        self.store.save_questionnaire(sid, f'{{"n": {i}}}')


def measure(target, turns: int, threads: int) -> float:
    """Turns per second: ``threads`` threads, each its own sessions of 10 turns."""
    per_thread = turns // threads

    def work() -> None:
        sid = ""
        for i in range(per_thread):
            if i % 10 == 0:
                sid = target.create_session()
            target.turn(sid, i)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return per_thread * threads / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tailor-bench-store-"))
    root.chmod(0o755)
    cluster = None
    try:
        targets: dict[str, Callable[[], object]] = {
            "bare sqlite3 (floor)": lambda: BareSqlite(root / f"bare-{uuid.uuid4().hex}.db"),
            "Store, SQLite": lambda: ViaStore(Store(root / f"s-{uuid.uuid4().hex}.db")),
        }
        if not args.no_postgres:
            from tests.pgcluster import PgCluster

            cluster = PgCluster(root / "pg").start()
            targets["Store, PostgreSQL"] = lambda: ViaStore(Store(cluster.create_database()))
        print(f"{args.turns} chat turns (2 messages, a read, an upsert each)")
        print(f"{'':24} {'1 thread':>16} {'8 threads':>16}")
        floor: dict[int, float] = {}
        for name, make in targets.items():
            cells = []
            for threads in (1, 8):
                make().turn  # noqa: B018 - warm imports and pools on a throwaway target
                rate = measure(make(), args.turns, threads)
                floor.setdefault(threads, rate)
                cells.append(f"{rate:7.0f}/s {rate / floor[threads]:5.2f}x")
            print(f"{name:24} {cells[0]:>16} {cells[1]:>16}")
    finally:
        if cluster is not None:
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
