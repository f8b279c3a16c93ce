"""Overhead of the app's local provider over raw llama_cpp, measured in the same run.

Both arms use the same Llama object, the same rendered chat prompt, greedy decoding and the
same max_tokens; the KV cache is reset before every generation so neither arm reuses the
other's prompt. The app arm goes through everything a chat reply does: LLMClient ->
LocalModel -> llama_cpp, with timing, token counting and the SQLite call log.

    .venv/bin/python bench/llm_overhead.py [--rounds 5] [--max-tokens 128]

Prints time to first token (TTFT) and decode tokens/s per arm (medians) and the ratios;
goal: overhead under 10%.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from assistant.core.config import REPO_ROOT
from assistant.infra.llm import GenerationParams, LLMClient, LocalModel
from assistant.infra.store import Store
from assistant.prompts.templates import TemplateRegistry

QUESTIONS = [
    "Can you suggest a gift for my mother who loves gardening?",
    "What would be a nice present for a colleague leaving the office?",
    "I need a birthday gift for a ten year old who likes drawing.",
    "Any ideas for a housewarming gift under twenty pounds?",
    "My friend collects vintage tea cups. What could I give her?",
]


def run(stream, t0: float) -> tuple[float, float, int]:
    """(ttft s, total s, tokens) of one streamed generation."""
    first = None
    n = 0
    for _ in stream:
        n += 1
        if first is None:
            first = time.perf_counter() - t0
    return first or 0.0, time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()

    tpl = TemplateRegistry(REPO_ROOT / "prompts").get("chat")
    model = LocalModel()
    llama = model.llama  # loaded once, shared by both arms
    params = GenerationParams(temperature=0.0, max_tokens=args.max_tokens, repeat_penalty=1.1)
    with tempfile.TemporaryDirectory() as tmp:
        client = LLMClient(model, Store(Path(tmp) / "bench.sqlite3"))
        results: dict[str, list[tuple[float, float, int]]] = {"raw llama_cpp": [], "app": []}
        # warm-up (first-call allocations) for both
        prompt0 = tpl.render(shop_name="Tailor Gifts", message="hello")
        list(client.generate(prompt0, params))
        for r in range(args.rounds):
            prompt = tpl.render(shop_name="Tailor Gifts", message=QUESTIONS[r % len(QUESTIONS)])
            arms = ["raw llama_cpp", "app"] if r % 2 == 0 else ["app", "raw llama_cpp"]
            for arm in arms:
                llama.reset()
                t0 = time.perf_counter()
                if arm == "app":
                    out = run(client.generate(prompt, params, template_name="chat"), t0)
                else:
                    stream = llama.create_chat_completion(
                        messages=[m.model_dump() for m in prompt], stream=True,
                        temperature=params.temperature, top_p=params.top_p,
                        max_tokens=params.max_tokens, repeat_penalty=params.repeat_penalty)
                    out = run((c for c in stream
                               if c["choices"][0].get("delta", {}).get("content")), t0)
                results[arm].append(out)

    def summary(rows: list[tuple[float, float, int]]) -> tuple[float, float, int]:
        ttft = statistics.median(r[0] for r in rows)
        tps = statistics.median((r[2] - 1) / (r[1] - r[0]) for r in rows if r[2] > 1)
        return ttft, tps, sum(r[2] for r in rows)

    raw = summary(results["raw llama_cpp"])
    app = summary(results["app"])
    print(f"model {model.path.name}, {args.rounds} rounds, max_tokens {args.max_tokens}, greedy")
    print(f"{'arm':<15}{'TTFT ms':>10}{'tokens/s':>10}{'tokens':>8}")
    for name, (ttft, tps, n) in (("raw llama_cpp", raw), ("app", app)):
        print(f"{name:<15}{ttft * 1000:>10.1f}{tps:>10.1f}{n:>8}")
    ttft_ratio = app[0] / raw[0]
    tps_ratio = app[1] / raw[1]
    print(f"ratio app/raw: TTFT {ttft_ratio:.3f}  tokens/s {tps_ratio:.3f}  "
          f"(overhead: TTFT {100 * (ttft_ratio - 1):+.1f}%, "
          f"throughput {100 * (1 - tps_ratio):+.1f}%)")
    ok = ttft_ratio < 1.10 and tps_ratio > 0.90
    print("goal (<10% overhead):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
