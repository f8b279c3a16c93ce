"""Scale-out, proven: two Tailor processes on different ports share a real PostgreSQL (a
throwaway cluster of Debian's server), a real Chroma server (``chroma run``) and an
OpenAI-compatible model server (the fake one, speaking the protocol on loopback). They share
one data directory for the segment artefacts, as two containers share a volume.

- both start at once on an empty database: the migrations run once, the other waits;
- a customer's session started on A goes on on B (questionnaire, card, suggestions);
- an ops promotion made on A is served by B within seconds;
- 20 concurrent sessions spread over both finish with 0 errors;
- killing A mid-stream loses no saved message, and B carries the conversation on.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from assistant.infra.store import Store, head_revision
from assistant.infra.users import UserStore
from tests.apprunner import PASSWORD, AppProcess
from tests.fake_openai import FakeOpenAIServer, stall
from tests.servers import ChromaServer

pytestmark = pytest.mark.e2e

TEMPLATE = "recommendation"


@pytest.fixture(scope="module")
def pair(tmp_path_factory, staff_shop, pg_cluster):
    from tests.conftest import copy_shop

    root = tmp_path_factory.mktemp("two-processes")
    data, orders = copy_shop(staff_shop, root / "shop")
    (data / "tailor.sqlite3").unlink(missing_ok=True)  # not used: everything is in PostgreSQL
    database = pg_cluster.create_database()
    with ChromaServer(root / "chroma") as chroma, FakeOpenAIServer() as model:
        env = {"TAILOR_DATABASE_URL": database, "TAILOR_CHROMA_URL": chroma.url,
               "OPENAI_BASE_URL": model.base_url, "TAILOR_LLM_MODEL": "fake-model",
               "TAILOR_ORDERS": str(orders), "TAILOR_LLM_FIRST_TOKEN_TIMEOUT": "30",
               "TAILOR_REQUESTS_PER_MINUTE": "1000"}
        a = AppProcess(data, provider="auto", env=env)
        b = AppProcess(data, provider="auto", env=env)
        starting = [threading.Thread(target=app.start) for app in (a, b)]
        for th in starting:  # at once, on an empty database
            th.start()
        for th in starting:
            th.join(300)
        try:
            assert all(app.proc and app.proc.poll() is None for app in (a, b)), \
                a.log()[-3000:] + b.log()[-3000:]
            store = Store(database)
            UserStore(store).add("olivia", PASSWORD, "ops")
            yield a, b, store, model
        finally:
            a.stop()
            b.stop()


def test_both_started_on_one_migration(pair) -> None:
    a, b, store, _ = pair
    assert store.revision() == head_revision()
    with store.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM alembic_version").scalar() == 1
    for app in (a, b):
        assert "provider=openai model=fake-model" in app.log()
        assert "tailor.sqlite3" not in app.log()


def test_a_session_started_on_a_goes_on_on_b(pair) -> None:
    a, b, store, _ = pair
    on_a = Client(a.url, verbose=False)
    sid = on_a.predict(api_name="/session")
    on_a.predict("skip", api_name="/chat")  # the opening question, skipped
    on_a.predict("interests", "candles and christmas", api_name="/answer")
    on_a.predict("budget", "about 40 quid", api_name="/answer")
    card_a = on_a.predict(api_name="/profile")
    history_a = on_a.predict([], api_name="/suggest")
    assert history_a[-1]["role"] == "assistant" and history_a[-1]["content"]

    on_b = Client(b.url, verbose=False)
    resumed = on_b.predict(sid, api_name="/resume")
    assert _texts(resumed) == _texts(on_a.predict(sid, api_name="/resume"))
    assert _texts(resumed)[-1] == _texts(history_a)[-1]  # the suggestion made on A
    card_b = on_b.predict(api_name="/profile")
    assert card_b["facts"] == card_a["facts"] and card_b["answered"] == card_a["answered"]
    assert on_b.predict(api_name="/question")["id"] == on_a.predict(api_name="/question")["id"]
    history_b = on_b.predict(history_a, api_name="/suggest")
    assert len(history_b) > len(history_a) and history_b[-1]["role"] == "assistant"
    served = {c.session_id for c in store.llm_calls(200) if c.template_name == TEMPLATE}
    assert sid in served


def _texts(history: list[dict]) -> list[str]:
    """The text of each message of a chat history as the API returns it."""
    def text(content) -> str:
        if isinstance(content, list):
            return "".join(part.get("text", "") for part in content)
        return str(content)
    return [text(m["content"]) for m in history]


def _suggest_version(url: str, store: Store) -> str:
    """A new shopper on ``url`` asks for suggestions: the recommendation template version
    its message was written with."""
    shopper = Client(url, verbose=False)
    sid = shopper.predict(api_name="/session")
    shopper.predict("interests", "candles and christmas", api_name="/answer")
    shopper.predict([], api_name="/suggest")
    [version] = {c.template_version for c in store.llm_calls(200)
                 if c.session_id == sid and c.template_name == TEMPLATE}
    return version


def test_a_promotion_on_a_is_served_by_b_within_seconds(pair) -> None:
    a, b, store, _ = pair
    ops = Client(a.url + "staff/", auth=("olivia", PASSWORD), verbose=False)
    v1 = ops.predict(TEMPLATE, "production", api_name="/prompt")
    body = v1["body"].replace("Write one short, warm message",
                              "Write one short, cheerful message")
    saved = ops.predict(TEMPLATE, body, "", "cheerful wording", str(v1["version"]),
                        api_name="/prompt_save")
    assert saved["ok"], saved
    staged = ops.predict(TEMPLATE, saved["version"], "staging", 1.0, "", "", False,
                         api_name="/prompt_label")
    assert staged["ok"], staged
    promoted = ops.predict(TEMPLATE, "two-process test", True, api_name="/prompt_promote")
    assert promoted["ok"] and promoted["labels"]["production"]["version"] == saved["version"]
    done = time.monotonic()
    want = f"v{saved['version']}"
    while (version := _suggest_version(b.url, store)) != want:
        assert time.monotonic() - done < 20, f"B still serves {version}"
        time.sleep(0.5)
    print(f"B served {want} {time.monotonic() - done:.1f} s after the promotion on A")


def test_twenty_concurrent_sessions_over_both_finish_without_errors(pair) -> None:
    a, b, store, _ = pair

    def session(i: int) -> tuple[str, int]:
        client = Client((a, b)[i % 2].url, verbose=False)
        sid = client.predict(api_name="/session")
        client.predict("Just chat", api_name="/chat")
        reply = client.predict(f"hello from shopper {i}", api_name="/chat")
        assert reply.strip()
        client.predict("interests", "candles", api_name="/answer")
        return sid, len(store.messages(sid))

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(session, range(20)))
    assert len({sid for sid, _ in results}) == 20
    assert all(n >= 4 for _, n in results), results


def test_killing_a_mid_stream_loses_no_saved_message(pair) -> None:
    a, b, store, model = pair
    on_a = Client(a.url, verbose=False)
    sid = on_a.predict(api_name="/session")
    on_a.predict("Just chat", api_name="/chat")
    on_a.predict("first question", api_name="/chat")
    model.script([stall(after=2, seconds=60)])  # the next reply stops mid-stream
    before = len(model.requests)
    on_a.submit("tell me a long story", api_name="/chat")  # streams on A
    deadline = time.monotonic() + 30
    while not any(m.content == "tell me a long story" for m in store.messages(sid)):
        assert time.monotonic() < deadline, "the message never reached the store"
        time.sleep(0.1)
    while not any(r.behaviour and r.behaviour.kind == "stall"
                  for r in model.requests[before:]):
        assert time.monotonic() < deadline, "the model server was not asked for the reply"
        time.sleep(0.1)
    time.sleep(1.0)  # its first words are out; the stream stalls
    saved = [(m.id, m.role, m.content) for m in store.messages(sid)]
    assert saved[-1][1:] == ("user", "tell me a long story")  # no reply saved yet
    a.proc.kill()  # SIGKILL: no clean-up of any kind
    a.proc.wait(10)
    assert [(m.id, m.role, m.content) for m in store.messages(sid)][:len(saved)] == saved
    on_b = Client(b.url, verbose=False)
    resumed = on_b.predict(sid, api_name="/resume")
    assert _texts(resumed)[:len(saved)] == [c for _, _, c in saved]
    assert on_b.predict("are you still there?", api_name="/chat").strip()
    assert store.messages(sid)[-2].content == "are you still there?"
