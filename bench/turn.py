"""One chat turn under load: Tailor against a do-nothing Gradio app (the floor).

50 concurrent gradio_client sessions each answer the guided questionnaire through `/chat`
(one message per question, the answers a real visitor would type) and then ask
`/recommend`, against the warm app on the scripted model (no model calls). The same load
runs against a Gradio app whose `/chat` and `/recommend` do nothing but keep a session
state, in the same run and on the same cores (the load generator shares them): the
floor is what Gradio, HTTP and the client cost on their own. Its `/chat` is a generator
like Tailor's (which streams model replies); `--plain-floor` makes it a plain function,
a stricter floor (Gradio runs a generator's steps as separate thread hops).

    .venv/bin/python bench/turn.py [--sessions 50] [--data-dir DIR] [--plain-floor]

The first run builds segments, the recommender and the indexes in DIR (default
``~/.cache/tailor-bench-turn``; a few minutes), later runs reuse them. Prints per-call
latencies (p50/p95), the wall time of all sessions, errors, and the ratio Tailor/floor.
Issue 13's goal: a ratio within 1.5, 0 errors.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.apprunner import AppProcess, free_port  # noqa: E402

# what a visitor types, per question (the first matching option for choice questions)
ANSWERS = {
    "looking_for": "a birthday present for my mum, she loves candles, about 20 pounds",
    "buyer_type": "for myself or as gifts",
    "interests": "candles and kitchen",
    "occasion": "a birthday",
    "recipient": "family",
    "business_kind": "a gift shop",
    "budget": "about 20",
    "order_frequency": "a few times a year",
    "spend_per_order": "under £150",
    "last_order": "1-3 months ago",
    "region": "United Kingdom",
    "email": "skip",
    "anything_else": "no",
}


# the chat app's queue (assistant/ui/server.py): the floor queues the same way
CONCURRENCY = 4


def floor_app(port: int, plain: bool = False) -> None:
    """A Gradio app with the same two endpoints (and a session state) doing nothing. Its
    ``/chat`` streams like Tailor's (a generator, one chunk); ``plain``: a function."""
    import gradio as gr  # lazy: only in the floor's own process

    def streamed(message: str, sid: str | None) -> Iterator[tuple[str, str]]:
        yield f"ok: {message}", sid or "s"

    def function(message: str, sid: str | None) -> tuple[str, str]:
        return f"ok: {message}", sid or "s"

    chat = function if plain else streamed

    def recommend(sid: str | None) -> tuple[dict, str]:
        return {"items": [], "popular": True}, sid or "s"

    with gr.Blocks() as demo:
        session = gr.State(None)
        box, out, js = gr.Textbox(), gr.Textbox(), gr.JSON()
        gr.Button().click(chat, [box, session], [out, session], api_name="chat")
        gr.Button().click(recommend, [session], [js, session], api_name="recommend")
    demo.queue(default_concurrency_limit=CONCURRENCY).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=False, quiet=True)


def script_of(url: str) -> list[str]:
    """The messages one visitor sends: walk the questionnaire once, asking `/question`
    for each pending question (not timed), stopping at the summary."""
    client = Client(url, verbose=False)
    messages: list[str] = []
    for _ in range(20):
        question = client.predict(api_name="/question")
        if question["done"]:
            return messages
        options = question.get("options") or [{"label": "skip"}]
        text = ANSWERS.get(question["id"]) or options[0]["label"]
        messages.append(text)
        client.predict(text, api_name="/chat")
    raise RuntimeError("the questionnaire did not reach its summary in 20 answers")


#: why calls failed, counted (printed after the table)
REASONS: Counter[str] = Counter()


def session(url: str, messages: list[str]) -> tuple[list[float], list[float], int]:
    """One visitor: the answers, then /recommend. Returns the latencies and errors."""
    chat_ms: list[float] = []
    rec_ms: list[float] = []
    errors = 0
    try:
        client = Client(url, verbose=False)
    except Exception:  # noqa: BLE001 - a bench counts failures, it does not stop
        return chat_ms, rec_ms, len(messages) + 1
    for text in [*messages, None]:
        t0 = time.perf_counter()
        try:
            if text is None:
                out = client.predict(api_name="/recommend")
                if not isinstance(out, dict) or "items" not in out:
                    errors += 1
            else:
                reply = client.predict(text, api_name="/chat")
                if not reply:
                    errors += 1
        except Exception as exc:  # noqa: BLE001
            errors += 1
            REASONS[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1
            continue
        (rec_ms if text is None else chat_ms).append((time.perf_counter() - t0) * 1000)
    return chat_ms, rec_ms, errors


def load(url: str, messages: list[str], sessions: int) -> dict[str, float]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        results = list(pool.map(lambda _: session(url, messages), range(sessions)))
    wall = time.perf_counter() - t0
    chat = [x for c, _, _ in results for x in c]
    rec = [x for _, r, _ in results for x in r]

    def pct(xs: list[float], q: int) -> float:
        return statistics.quantiles(xs, n=100)[q - 1] if len(xs) > 1 else float("nan")

    return {"wall_s": wall, "errors": sum(e for _, _, e in results),
            "chat_p50": pct(chat, 50), "chat_p95": pct(chat, 95),
            "rec_p50": pct(rec, 50), "rec_p95": pct(rec, 95)}


def wait_for_builds(app: AppProcess, timeout: float = 900) -> None:
    """First-run builds happen in the app's background thread: wait for their log line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = app.log()
        if "help base and intent classifier ready" in text or \
                ("recommender ready" in text and (app.data_dir / "help").exists()):
            return
        if app.proc and app.proc.poll() is not None:
            raise RuntimeError(app.log())
        time.sleep(2)
    raise RuntimeError("first-run builds did not finish")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--data-dir", type=Path,
                    default=Path.home() / ".cache" / "tailor-bench-turn")
    ap.add_argument("--plain-floor", action="store_true",
                    help="the floor's /chat as a plain function (Tailor's streams)")
    ap.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_floor:
        floor_app(args.serve_floor, plain=args.plain_floor)
        return

    fresh = not (args.data_dir / "artifacts").exists()
    # 50 visitors from one address here: the per-address limit would refuse them
    env = {"TAILOR_AUTO_BUILD_SEGMENTS": "true", "TAILOR_REQUESTS_PER_MINUTE": "100000"}
    with AppProcess(args.data_dir, provider="scripted", env=env) as app:
        if fresh:
            print("first run: building segments, recommender and indexes …", flush=True)
            wait_for_builds(app)
        messages = script_of(app.url)
        Client(app.url, verbose=False).predict(api_name="/recommend")  # fit once
        print(f"one visitor sends {len(messages)} answers, then /recommend", flush=True)
        tailor = load(app.url, messages, args.sessions)

    port = free_port()
    floor_proc = subprocess.Popen([sys.executable, __file__, "--serve-floor", str(port),
                                   *(["--plain-floor"] if args.plain_floor else [])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(120):
            try:
                Client(url, verbose=False)
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        floor = load(url, messages, args.sessions)
    finally:
        floor_proc.terminate()
        floor_proc.wait(15)

    kind = "plain function" if args.plain_floor else "generator, as Tailor's"
    print(f"\n{args.sessions} sessions × ({len(messages)} × /chat + /recommend); "
          f"floor's /chat: {kind}")
    print(f"{'':10}{'wall s':>8}{'errors':>8}{'chat p50':>10}{'chat p95':>10}"
          f"{'rec p50':>9}{'rec p95':>9}  (ms)")
    for name, r in (("tailor", tailor), ("floor", floor)):
        print(f"{name:10}{r['wall_s']:8.1f}{r['errors']:8d}{r['chat_p50']:10.0f}"
              f"{r['chat_p95']:10.0f}{r['rec_p50']:9.0f}{r['rec_p95']:9.0f}")
    ratio = tailor["wall_s"] / floor["wall_s"]
    print(f"\nratio tailor/floor (wall): {ratio:.2f}× (goal ≤ 1.5×, 0 errors)")
    for reason, n in REASONS.most_common(5):
        print(f"  {n} failed: {reason}")


if __name__ == "__main__":
    main()
