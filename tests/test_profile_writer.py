"""Session profiles reach Chroma from a background writer (``ProfileWriter``): the latest
profile of each session is written, in batches, and ``flush`` waits for them."""

from __future__ import annotations

import threading

from assistant.core.config import load_settings
from assistant.infra.vectors import VectorStore
from assistant.questionnaire.spec import load_spec
from assistant.recommend.profiles import SESSIONS, ProfileIndex, ProfileWriter


class SlowIndex:
    """Records each batch; the first write waits until the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.release = threading.Event()
        self.started = threading.Event()  # the writer holds its first batch

    def upsert_sessions(self, records: dict) -> int:
        self.started.set()
        self.release.wait(10)
        self.batches.append(dict(records))
        return len(records)


def test_only_the_latest_profile_of_a_session_is_written_in_one_batch():
    index = SlowIndex()
    writer = ProfileWriter(index)  # type: ignore[arg-type]
    writer.submit("a", "first", {})
    assert index.started.wait(10)  # (without this wait "b" could join "a"'s batch)
    # the writer holds "a" (blocked); these three wait behind it, "b" replaced once
    for sid, doc in (("b", "old"), ("b", "new"), ("c", "only")):
        writer.submit(sid, doc, {"v": doc})
    assert not writer.flush(timeout=0.2)  # still blocked: flush says so
    index.release.set()
    assert writer.flush(timeout=10)
    written = {sid: doc for batch in index.batches for sid, (doc, _) in batch.items()}
    assert written == {"a": "first", "b": "new", "c": "only"}
    assert len(index.batches) <= 2 and writer.written == 3


def test_a_failed_write_is_logged_and_the_writer_keeps_going(caplog):
    class Flaky(SlowIndex):
        def upsert_sessions(self, records: dict) -> int:
            if not self.batches:
                self.batches.append({})
                raise RuntimeError("chroma down")
            return super().upsert_sessions(records)

    index = Flaky()
    index.release.set()
    writer = ProfileWriter(index)  # type: ignore[arg-type]
    writer.submit("a", "doc", {})
    assert writer.flush(timeout=10)
    writer.submit("b", "doc", {})
    assert writer.flush(timeout=10)
    assert "could not write 1 session profiles" in caplog.text
    assert index.batches[-1] == {"b": ("doc", {})}


def test_written_profiles_are_in_a_real_chroma(tmp_path):
    settings = load_settings(data_dir=tmp_path, llm_provider="scripted")
    index = ProfileIndex(VectorStore.from_settings(settings), load_spec())
    writer = ProfileWriter(index)
    for sid in ("s1", "s2"):
        doc, meta = index.session_record({"interests": ["candles_lights"]}, segment="Loyal",
                                         customer_id=None)
        writer.submit(sid, doc, meta)
    assert writer.flush(timeout=60)
    got = index.store.get(SESSIONS, ["s1", "s2"])
    assert set(got) == {"s1", "s2"} and got["s1"]["metadata"]["segment"] == "Loyal"
