"""A small fake OpenAI-compatible server for tests (stdlib only).

It listens on 127.0.0.1 (a free port), in a background thread, and speaks just enough of
the API for the openai client: ``POST /v1/chat/completions`` (JSON, or SSE when
``stream`` is true, with a final usage chunk when ``stream_options.include_usage`` is
asked) and ``GET /v1/models``.

Each test scripts what the next requests get, in order::

    with FakeOpenAIServer() as server:
        server.script(["500", "ok"])              # a failure, then a normal reply
        server.script([reply("Hi there")], then="429")   # then 429 forever
        ...
        server.bodies[-1]["model"]                # what the client sent

Behaviours (a string or a :class:`Behaviour`):

- ``"ok"`` / :func:`reply`: a reply (streamed word by word when asked to stream);
- ``"500"``, ``"429"``, any other status code / :func:`error`: an error response with an
  OpenAI-style error body and ``retry-after-ms: 10`` (so the client's backoff is short);
- ``"hang"`` / :func:`hang`: say nothing for ``seconds`` (default 3 s; cut short when the
  server stops), then try to answer normally;
- ``"stall"`` / :func:`stall`: stream the first chunks, then say nothing, as ``hang``;
- ``"cut"`` / :func:`cut`: send the first chunks, then close the socket abruptly (no final
  chunk terminator, no ``[DONE]``).

When the script is used up, every further request gets the ``then`` behaviour
(``"ok"`` by default). Every request is recorded in :attr:`FakeOpenAIServer.requests`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

DEFAULT_TEXT = "Hello from the fake server, nice to meet you."
DEFAULT_MODEL = "fake-model"

Kind = Literal["ok", "error", "hang", "stall", "cut"]
Framing = Literal["chunked", "close"]


@dataclass(frozen=True)
class Behaviour:
    """What the server does with one request."""

    kind: Kind = "ok"
    text: str = DEFAULT_TEXT
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    #: usage reported to the client; completion tokens default to the number of deltas
    prompt_tokens: int = 11
    completion_tokens: int | None = None
    #: pause between streamed chunks, seconds
    chunk_delay: float = 0.005
    #: hang / stall: how long to stay silent (cut short when the server stops)
    seconds: float = 3.0
    #: cut / stall: how many content deltas are sent first
    after: int = 2
    #: streamed body framing: chunked transfer encoding, or delimited by closing the socket
    framing: Framing = "chunked"

    def deltas(self) -> list[str]:
        """The reply split into word-sized deltas: "a b c" -> ["a", " b", " c"]."""
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    def usage(self) -> dict[str, int]:
        completion = self.completion_tokens
        if completion is None:
            completion = len(self.deltas())
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def reply(text: str = DEFAULT_TEXT, **kw: Any) -> Behaviour:
    return Behaviour(kind="ok", text=text, **kw)


def error(status: int = 500, **kw: Any) -> Behaviour:
    headers = {"retry-after-ms": "10", **kw.pop("headers", {})}
    return Behaviour(kind="error", status=status, headers=headers, **kw)


def hang(seconds: float = 3.0, **kw: Any) -> Behaviour:
    return Behaviour(kind="hang", seconds=seconds, **kw)


def stall(after: int = 2, seconds: float = 3.0, **kw: Any) -> Behaviour:
    return Behaviour(kind="stall", after=after, seconds=seconds, **kw)


def cut(after: int = 2, **kw: Any) -> Behaviour:
    return Behaviour(kind="cut", after=after, **kw)


def as_behaviour(spec: str | int | Behaviour) -> Behaviour:
    if isinstance(spec, Behaviour):
        return spec
    spec = str(spec).strip().lower()
    if spec == "ok":
        return reply()
    if spec == "hang":
        return hang()
    if spec == "stall":
        return stall()
    if spec == "cut":
        return cut()
    if spec.isdigit():
        return error(int(spec))
    raise ValueError(f"unknown fake-server behaviour {spec!r}")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    behaviour: Behaviour | None = None
    started: float = field(default_factory=time.monotonic)


class _Closed(Exception):
    """The client went away; stop answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses
    server: _Server
    #: an idle keep-alive connection ends by itself after this many seconds
    timeout = 10

    def setup(self) -> None:
        super().setup()
        self.server.track(self)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.untrack(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    # -- plumbing -------------------------------------------------------------------
    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:  # BrokenPipe, ConnectionReset: the client gave up
            raise _Closed from exc

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                   ) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
        except OSError as exc:
            raise _Closed from exc
        self._write(data)

    def _abort(self) -> None:
        """Close the socket now, whatever was (not) sent."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _silence(self, seconds: float) -> None:
        self.server.stopping.wait(seconds)

    # -- routes -----------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        self.server.record(RecordedRequest("GET", self.path, dict(self.headers), None))
        try:
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                    for m in self.server.models
                ]})
            else:
                self._not_found()
        except _Closed:
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802
        body = self._read_body()
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.server.record(RecordedRequest("POST", self.path, dict(self.headers), body))
            with contextlib.suppress(_Closed):
                self._not_found()
            return
        behaviour = self.server.next_behaviour()
        self.server.record(RecordedRequest("POST", self.path, dict(self.headers), body,
                                           behaviour))
        try:
            self._chat(behaviour, body if isinstance(body, dict) else {})
        except _Closed:
            self.close_connection = True

    def _not_found(self) -> None:
        self._send_json(404, {"error": {"message": f"no route {self.path}",
                                        "type": "invalid_request_error", "code": None}})

    def _chat(self, b: Behaviour, body: dict[str, Any]) -> None:
        if b.kind == "error":
            self._send_json(b.status, {"error": {
                "message": f"fake server error {b.status}",
                "type": "rate_limit_error" if b.status == 429 else "server_error",
                "code": None,
            }}, b.headers)
            return
        if b.kind == "hang":
            self._silence(b.seconds)
            if self.server.stopping.is_set():
                self._abort()
                return
        model = body.get("model") or DEFAULT_MODEL
        if body.get("stream"):
            opts = body.get("stream_options") or {}
            self._stream(b, model, include_usage=bool(opts.get("include_usage")))
        else:
            self._complete(b, model)

    def _complete(self, b: Behaviour, model: str) -> None:
        payload = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": b.text}}],
            "usage": b.usage(),
        }
        if b.kind != "cut":
            self._send_json(200, payload, b.headers)
            return
        data = json.dumps(payload).encode()
        try:  # promise the whole body, send half of it, hang up
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
        except OSError as exc:
            raise _Closed from exc
        self._write(data[: len(data) // 2])
        self._abort()

    def _stream(self, b: Behaviour, model: str, *, include_usage: bool) -> None:
        chunked = b.framing == "chunked"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            for name, value in b.headers.items():
                self.send_header(name, value)
            self.end_headers()
        except OSError as exc:
            raise _Closed from exc

        def send(data: bytes) -> None:
            self._write(b"%X\r\n%s\r\n" % (len(data), data) if chunked else data)

        def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> None:
            chunk: dict[str, Any] = {
                "id": "chatcmpl-fake", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "choices": choices,
            }
            if include_usage:
                chunk["usage"] = usage
            send(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        def delta(d: dict[str, str], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": d, "finish_reason": finish, "logprobs": None}

        event([delta({"role": "assistant", "content": ""})])
        for i, piece in enumerate(b.deltas()):
            if b.kind in ("cut", "stall") and i == b.after:
                if b.kind == "cut":
                    self._abort()
                    return
                self._silence(b.seconds)
                if self.server.stopping.is_set():
                    self._abort()
                    return
            if b.chunk_delay:
                time.sleep(b.chunk_delay)
            event([delta({"content": piece})])
        event([delta({}, "stop")])
        if include_usage:
            event([], b.usage())
        send(b"data: [DONE]\n\n")
        if chunked:
            self._write(b"0\r\n\r\n")
        else:
            self._abort()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.queue: deque[Behaviour] = deque()
        self.then: Behaviour = reply()
        self.models: list[str] = [DEFAULT_MODEL]
        self.requests: list[RecordedRequest] = []
        self._handlers: dict[_Handler, threading.Thread] = {}

    def next_behaviour(self) -> Behaviour:
        with self.lock:
            return self.queue.popleft() if self.queue else self.then

    def record(self, req: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(req)

    def track(self, handler: _Handler) -> None:
        with self.lock:
            self._handlers[handler] = threading.current_thread()

    def untrack(self, handler: _Handler) -> None:
        with self.lock:
            self._handlers.pop(handler, None)

    def close_all(self, timeout: float) -> list[threading.Thread]:
        """Hang up every open connection; wait for the handler threads; return stragglers."""
        with self.lock:
            handlers = dict(self._handlers)
        for handler in handlers:
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in handlers.values():
            thread.join(max(deadline - time.monotonic(), 0))
        return [t for t in handlers.values() if t.is_alive()]


class FakeOpenAIServer:
    """The fake server; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, models: Iterable[str] = (DEFAULT_MODEL,)) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._models = list(models)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        if self._server is not None:
            return self
        self._server = _Server()
        self._server.models = self._models
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, end hanging handlers and open connections; bounded by ``timeout``."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        stragglers = server.close_all(timeout)
        if stragglers:
            raise RuntimeError(f"fake server handlers still running: {stragglers}")

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the fake server is not running")
        return self._server

    # -- addresses ------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        """What the openai client wants as ``base_url``: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ------------------------------------------------------------------
    def script(self, behaviours: Iterable[str | int | Behaviour] = (),
               then: str | int | Behaviour = "ok") -> FakeOpenAIServer:
        """Replace the queue: these behaviours for the next requests, then ``then``."""
        queue = deque(as_behaviour(b) for b in behaviours)
        default = as_behaviour(then)
        with self.server.lock:
            self.server.queue = queue
            self.server.then = default
        return self

    def reset(self) -> None:
        """Forget the recorded requests and the script."""
        with self.server.lock:
            self.server.requests.clear()
            self.server.queue.clear()
            self.server.then = reply()

    # -- what was received ----------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self.server.lock:
            return list(self.server.requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    @property
    def bodies(self) -> list[Any]:
        """The parsed JSON bodies of the chat completion requests, in order."""
        return [r.body for r in self.chat_requests]

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self.server.lock:
            return len(self.server.queue)


__all__ = [
    "DEFAULT_MODEL", "DEFAULT_TEXT", "Behaviour", "FakeOpenAIServer", "RecordedRequest",
    "as_behaviour", "cut", "error", "hang", "reply", "stall",
]
