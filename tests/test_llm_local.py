"""The embedded local model (SmolLM2 on llama.cpp), for real."""

import pytest

from assistant.core.errors import ModelResponseError, ModelUnavailableError
from assistant.core.schemas import Message
from assistant.infra.llm import GenerationParams, LLMClient, LocalModel, default_gguf_path
from assistant.infra.store import Store

pytestmark = pytest.mark.slow

SHORT = GenerationParams(temperature=0.0, max_tokens=12)


@pytest.fixture(scope="module")
def model():
    return LocalModel()


def test_gguf_ships_in_the_wheel():
    path = default_gguf_path()
    assert path is not None and path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_streams_counts_tokens_and_logs(model, tmp_path):
    store = Store(tmp_path / "t.sqlite3")
    client = LLMClient(model, store)
    gen = client.generate([Message(role="user", content="Say hello to a customer.")], SHORT,
                          template_name="adhoc")
    deltas = list(gen)
    assert len(deltas) > 1 and gen.text.strip()
    [call] = store.llm_calls()
    assert (call.provider, call.model, call.outcome) == ("local", "SmolLM2-135M-Instruct", "ok")
    assert 1 <= call.completion_tokens <= 12
    assert call.prompt_tokens > 5
    assert 0 < call.ttft_ms <= call.latency_ms


def test_loaded_once_per_process(model):
    assert LocalModel().llama is model.llama


def test_greedy_is_deterministic(model):
    client = LLMClient(model)
    msgs = [Message(role="user", content="Name one gift for a gardener.")]
    assert client.complete(msgs, SHORT) == client.complete(msgs, SHORT)


def test_too_long_for_the_context_is_a_clear_error(model):
    client = LLMClient(model)
    with pytest.raises(ModelResponseError) as exc:
        client.complete([Message(role="user", content="🎁" * 4000)], SHORT)
    assert "too long" in exc.value.message and "TAILOR_LOCAL_CONTEXT" in exc.value.hint


def test_missing_model_file_says_how_to_fix(tmp_path):
    with pytest.raises(ModelUnavailableError) as exc:
        LocalModel(tmp_path / "nope.gguf")
    assert "tailor.sh start" in exc.value.hint
