"""The OpenAI-compatible path, end to end through the real openai client.

``assistant.infra.llm.OpenAIModel`` (LangChain ``ChatOpenAI`` -> openai -> httpx) talks to the
fake server in ``tests/fake_openai.py`` on 127.0.0.1; ``LLMClient`` logs every call in a
real SQLite ``Store``. No network beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from assistant.core.config import load_settings
from assistant.core.errors import ModelUnavailableError
from assistant.core.schemas import LLMCall, Message
from assistant.infra.llm import GenerationParams, LLMClient, OpenAIModel, build_model
from assistant.infra.store import Store
from tests.fake_openai import DEFAULT_TEXT, FakeOpenAIServer, cut, hang, reply, stall

MESSAGES = [
    Message(role="system", content="You are a terse shop assistant."),
    Message(role="user", content="Suggest a gift for my sister."),
]
TEXT = "A hand-poured candle with her initials would be lovely."


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxies, no LangSmith tracing, no stray OpenAI/Tailor settings from outside."""
    prefixes = ("TAILOR_", "OPENAI_", "LANGCHAIN_", "LANGSMITH_")
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    for name in list(os.environ):
        if name.upper().startswith(prefixes) or name.lower() in proxies:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> FakeOpenAIServer:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "tailor.sqlite3")


def make_client(fake: FakeOpenAIServer, store: Store, *, timeout: float = 5.0,
                max_retries: int = 2, model: str = "fake-model",
                base_url: str | None = None) -> LLMClient:
    chat = OpenAIModel(model=model, base_url=base_url or fake.base_url, api_key=None,
                       timeout=timeout, connect_timeout=1.0, max_retries=max_retries)
    return LLMClient(chat, store)


def only_call(store: Store) -> LLMCall:
    calls = store.llm_calls()
    assert len(calls) == 1, calls
    return calls[0]


def failing_generation(client: LLMClient) -> tuple[object, ModelUnavailableError, list[str]]:
    """Run a generation that must fail; return it, the error and the deltas seen."""
    gen = client.generate(MESSAGES)
    seen: list[str] = []
    with pytest.raises(ModelUnavailableError) as info:
        for delta in gen:
            seen.append(delta)
    return gen, info.value, seen


# --------------------------------------------------------------------------- happy path
def test_streamed_reply_arrives_in_deltas_and_is_logged(fake, store):
    fake.script([reply(TEXT, prompt_tokens=23)])
    client = make_client(fake, store)

    gen = client.generate(MESSAGES, template_name="gift", template_version="3",
                          session_id="s-1")
    deltas = list(gen)

    assert len(deltas) == len(TEXT.split(" ")) > 3
    assert "".join(deltas) == TEXT == gen.text
    assert gen.outcome == "ok" and gen.error is None
    call = only_call(store)
    assert call.id == gen.call_id
    assert call.provider == "openai"
    assert call.model == "fake-model"
    assert call.prompt_tokens == 23
    assert call.completion_tokens == len(deltas)  # what the server's usage chunk said
    assert call.ttft_ms is not None and call.ttft_ms > 0
    assert call.latency_ms is not None and call.latency_ms >= call.ttft_ms > 0
    assert call.outcome == "ok" and call.error is None
    assert (call.template_name, call.template_version, call.session_id) == ("gift", "3", "s-1")
    assert len(fake.chat_requests) == 1


def test_request_body_carries_model_messages_and_params(fake, store):
    client = make_client(fake, store, model="my-model")
    params = GenerationParams(temperature=0.7, top_p=0.8, max_tokens=42, stop=["\nUser:"])

    assert client.complete(MESSAGES, params) == DEFAULT_TEXT

    (body,) = fake.bodies
    assert body["model"] == "my-model"
    assert body["messages"] == [m.model_dump() for m in MESSAGES]
    assert body["temperature"] == pytest.approx(0.7)
    assert body["top_p"] == pytest.approx(0.8)
    # langchain-openai renames max_tokens to max_completion_tokens for chat completions
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 42
    assert body["stop"] == ["\nUser:"]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    headers = {k.lower(): v for k, v in fake.chat_requests[0].headers.items()}
    assert headers["authorization"] == "Bearer not-needed"
    assert only_call(store).model == "my-model"


def test_stopping_early_is_logged_as_stopped(fake, store):
    fake.script([reply(TEXT, chunk_delay=0.02)])
    client = make_client(fake, store)

    gen = client.generate(MESSAGES)
    it = iter(gen)
    first = next(it)
    it.close()

    assert first == TEXT.split(" ")[0]
    assert gen.text == first and gen.outcome == "stopped"
    call = only_call(store)
    assert call.outcome == "stopped" and call.id == gen.call_id


# --------------------------------------------------------------------------- retries
@pytest.mark.parametrize("failure", ["500", "429", "503"])
def test_transient_failure_is_retried(fake, store, failure):
    fake.script([failure, reply(TEXT)])
    client = make_client(fake, store, max_retries=2)

    assert client.complete(MESSAGES) == TEXT

    assert len(fake.chat_requests) == 2  # the retry happened
    assert fake.bodies[0] == fake.bodies[1]
    call = only_call(store)  # one logical call, logged once
    assert call.outcome == "ok" and call.completion_tokens == len(TEXT.split(" "))


def test_server_error_forever_gives_up_after_max_retries(fake, store):
    fake.script(then="500")
    client = make_client(fake, store, max_retries=2)

    gen, err, seen = failing_generation(client)

    assert "500" in err.message and fake.base_url not in err.message  # logged, not shown
    assert err.hint
    assert seen == [] and gen.text == ""
    assert len(fake.chat_requests) == 3  # 1 try + 2 retries
    assert gen.outcome == "error" and gen.error is err
    call = only_call(store)
    assert call.outcome == "error" and call.error == err.message
    assert call.provider == "openai" and call.ttft_ms is None


def test_rate_limit_forever_says_so(fake, store):
    fake.script(then="429")
    client = make_client(fake, store, max_retries=1)

    _, err, _ = failing_generation(client)

    assert "rate limiting" in err.message and "429" in err.message
    assert err.hint
    assert len(fake.chat_requests) == 2
    assert only_call(store).outcome == "error"


# --------------------------------------------------------------------------- timeouts
def test_server_that_never_answers_times_out(fake, store):
    fake.script(then=hang(seconds=3))
    client = make_client(fake, store, timeout=0.5, max_retries=1)

    t0 = time.perf_counter()
    gen, err, seen = failing_generation(client)
    elapsed = time.perf_counter() - t0

    assert "did not answer in time" in err.message
    assert "TAILOR_LLM_TIMEOUT" in err.hint
    assert elapsed < 2.5  # two 0.5 s waits and one short backoff, not the 3 s hang
    assert len(fake.chat_requests) == 2  # the timeout was retried once
    assert seen == [] and gen.outcome == "error"
    assert only_call(store).outcome == "error"


def test_stream_that_goes_silent_times_out_and_keeps_partial_text(fake, store):
    fake.script([stall(after=2, seconds=3, text=TEXT)])
    client = make_client(fake, store, timeout=0.5, max_retries=1)

    gen, err, seen = failing_generation(client)

    assert "did not answer in time" in err.message
    assert gen.text == " ".join(TEXT.split(" ")[:2]) == "".join(seen)
    assert len(fake.chat_requests) == 1  # a stream that started is not retried
    call = only_call(store)
    assert call.outcome == "error" and call.ttft_ms is not None


# --------------------------------------------------------------------------- broken streams
def test_cut_stream_fails_and_keeps_partial_text(fake, store):
    fake.script([cut(after=2, text=TEXT)])
    client = make_client(fake, store)

    gen, err, seen = failing_generation(client)

    words = TEXT.split(" ")
    assert gen.text == f"{words[0]} {words[1]}" == "".join(seen)
    assert "closed the connection" in err.message
    assert err.hint
    assert gen.outcome == "error" and gen.error is err
    assert len(fake.chat_requests) == 1
    call = only_call(store)
    assert call.outcome == "error" and call.error == err.message
    assert call.prompt_tokens is None  # the usage chunk never came


def test_cut_stream_without_chunked_framing_is_not_a_success(fake, store):
    fake.script([cut(after=2, text=TEXT, framing="close")])
    client = make_client(fake, store)

    gen, err, _ = failing_generation(client)

    assert gen.text == " ".join(TEXT.split(" ")[:2])
    assert only_call(store).outcome == "error"


def test_length_cap_is_sent_as_max_tokens_to_compatible_servers(fake, store):
    client = make_client(fake, store)

    client.complete(MESSAGES, GenerationParams(max_tokens=42))

    assert fake.bodies[0].get("max_tokens") == 42


def test_connection_refused_points_at_the_base_url_setting(store):
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    chat = OpenAIModel(model="fake-model", base_url=url, api_key=None, timeout=2.0,
                       connect_timeout=1.0, max_retries=0)
    client = LLMClient(chat, store)

    gen = client.generate(MESSAGES)
    with pytest.raises(ModelUnavailableError) as info:
        list(gen)

    err = info.value
    assert "cannot be reached" in err.message and url not in err.message  # logged, not shown
    assert "TAILOR_OPENAI_BASE_URL" in err.hint
    call = only_call(store)
    assert call.outcome == "error" and call.provider == "openai"


# --------------------------------------------------------------------------- settings
def test_settings_from_env_resolve_to_openai_and_reach_the_server(fake, store, monkeypatch,
                                                                   tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env file gets read
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-key")
    monkeypatch.setenv("TAILOR_LLM_TIMEOUT", "5")
    monkeypatch.setenv("TAILOR_LLM_MAX_RETRIES", "1")

    defaults = load_settings()
    assert defaults.llm_provider == "auto"
    assert defaults.resolved_provider == "openai"
    assert defaults.resolved_model == "gpt-4o-mini"
    assert defaults.openai_base_url == fake.base_url

    settings = load_settings(llm_model="fake-model", data_dir=tmp_path / "var")
    model = build_model(settings)
    assert isinstance(model, OpenAIModel)
    assert model.provider == "openai" and model.model == "fake-model"
    assert model.base_url == fake.base_url

    fake.script(["500", reply(TEXT)])
    client = LLMClient(model, store)
    assert client.complete(MESSAGES) == TEXT
    assert client.where == fake.base_url
    assert len(fake.chat_requests) == 2  # TAILOR_LLM_MAX_RETRIES=1 allowed one retry
    assert fake.bodies[-1]["model"] == "fake-model"
    headers = {k.lower(): v for k, v in fake.chat_requests[-1].headers.items()}
    assert headers["authorization"] == "Bearer sk-fake-key"
    assert only_call(store).outcome == "ok"


def test_tailor_base_url_wins_over_openai_base_url(fake, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TAILOR_OPENAI_BASE_URL", fake.base_url)

    settings = load_settings()

    assert settings.resolved_provider == "openai"
    assert settings.openai_base_url == fake.base_url


# --------------------------------------------------------------------------- the fake itself
def test_fake_server_non_streaming_and_models(fake):
    import openai

    fake.script([reply("plain answer", prompt_tokens=5)])
    client = openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0, timeout=5)
    try:
        resp = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}], max_tokens=9)
        models = [m.id for m in client.models.list()]
    finally:
        client.close()

    assert resp.choices[0].message.content == "plain answer"
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 2)
    assert models == ["fake-model"]
    assert fake.bodies == [{"model": "fake-model", "max_tokens": 9,
                            "messages": [{"role": "user", "content": "hi"}]}]


def test_fake_server_stops_promptly_while_a_request_hangs(store):
    server = FakeOpenAIServer().start()
    try:
        server.script(then=hang(seconds=30))
        client = make_client(server, store, timeout=0.3, max_retries=0)
        with pytest.raises(ModelUnavailableError):
            client.complete(MESSAGES)
    finally:
        t0 = time.perf_counter()
        server.stop()  # raises if a handler thread is still running
        stopped_in = time.perf_counter() - t0
    assert stopped_in < 2


def test_personal_data_never_reaches_the_server_and_comes_back_in_the_answer(fake, store):
    """Issue 15: with redaction on (the default for an external server), emails, phone
    numbers, card numbers, addresses and names go out as placeholders; the answer gets the
    values back (a card number never); the call log says how many, not which."""
    import json

    said = ("My name is Jane Smith, email jane.smith@example.com, phone 07700 900123. "
            "Send it to 42 Baker Street, London NW1 6XE. My card 4111 1111 1111 1111 was "
            "charged £25.00 on 2010-12-01 for order 536365.")
    fake.script([reply("Dear [NAME_1], we will write to [EMAIL_1] and call [PHONE_1] about "
                       "order 536365; your card [CARD_1] is safe.")])
    chat = OpenAIModel(model="fake-model", base_url=fake.base_url, api_key=None, timeout=5.0,
                       connect_timeout=1.0, max_retries=0)
    client = LLMClient(chat, store, redact=True)
    text = client.complete([Message(role="system", content="Support for Tailor Gifts."),
                            Message(role="user", content=said)])
    sent = json.dumps(fake.bodies[-1], ensure_ascii=False)
    for value in ("Jane", "Smith", "jane.smith@example.com", "07700 900123", "Baker Street",
                  "NW1 6XE", "4111 1111 1111 1111"):
        assert value not in sent, value
    for kept in ("£25.00", "2010-12-01", "536365"):  # what the model needs, no one's identity
        assert kept in sent
    assert text == ("Dear Jane Smith, we will write to jane.smith@example.com and call "
                    "07700 900123 about order 536365; your card [card number] is safe.")
    call = only_call(store)
    assert call.redactions == 6  # name, email, phone, street, postcode, card


def test_redaction_is_on_for_external_servers_only(tmp_path):
    assert load_settings(data_dir=tmp_path, llm_provider="openai").redacts
    assert not load_settings(data_dir=tmp_path, llm_provider="local").redacts
    assert load_settings(data_dir=tmp_path, llm_provider="local", redact="on").redacts
    assert not load_settings(data_dir=tmp_path, llm_provider="openai", redact="OFF").redacts
