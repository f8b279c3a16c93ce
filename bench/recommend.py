"""Training time and memory of every recommender, and latency per recommendation request
(no language model), at the real data's size and at ten times as many customers, against
popularity in the same run.

    .venv/bin/python bench/recommend.py [--requests 200] [--scales 1,x10] [--k 10]
                                        [--cache var/cache] [--data PATH] [--chroma]

``--chroma`` adds the profile index: Chroma query p50/p95 and recall@10 against exact numpy
search on real profile embeddings (4,338 customers, and 100,000 made from them), with
Chroma's default HNSW parameters and with Tailor's (``infra/vectors.DEFAULT_HNSW``); the
same as ``bench/chroma_recall.py``.

Data: data/online_retail.csv.gz through assistant.recommend.interactions.load_interactions
(every customer, all dates), profiles as the evaluation builds them (RFM segment, answers derived
from the orders). Scale "1" is that data (about 4,300 customers); "xM" is M times as many
synthetic profiles, a number N is N of them, made by resampling the real customers with
replacement (seeded): their purchase rows, recency rows and profiles are copied under new
ids, the catalog stays the real one.

Training: each component fitted alone, its wall time and its peak of traced memory
(``tracemalloc``: Python and numpy allocations, so the arrays it builds), each as a ratio to
popularity's.

A request is one ``recommend(query, k, exclude_seen=True)`` call, reasons and score parts
included: "returning" queries a random known customer, "cold" a person known only by the
answers of a random real customer (interests, budget band, buyer type, region, segment).
Recommenders take turns request by request, so a change in the machine's load hits them
alike. Printed: fit time, then p50 / p95 in milliseconds per recommender and kind, and each
p50 as a ratio to popularity's (the in-run baseline). Content embeds the catalog once
(MiniLM, cached in --cache); the stated interests' embeddings are memoised per text, as in
the app.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.recommend import evaluation as ev  # noqa: E402
from assistant.recommend.algorithms import (  # noqa: E402
    HybridRecommender,
    Query,
    TrainingData,
    default_components,
)
from assistant.recommend.interactions import load_interactions  # noqa: E402


def scaled(data: TrainingData, n_users: int, seed: int = 0) -> TrainingData:
    """``n_users`` profiles resampled from ``data``'s customers (with replacement)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(data.users), n_users)
    users = pd.Index([f"s{i}" for i in range(n_users)], name="user")
    profiles = data.profiles.iloc[pick].copy()
    profiles.index = users
    recency = data.recency[pick] if data.recency is not None else None
    return TrainingData(users, data.items, data.matrix[pick].tocsr(), data.catalog, profiles,
                        recency)


def queries(data: TrainingData, n: int, seed: int = 1) -> dict[str, list[Query]]:
    rng = np.random.default_rng(seed)
    known = rng.integers(0, len(data.users), n)
    said = data.profiles.iloc[rng.integers(0, len(data.users), n)]
    cold = [Query(interests=tuple(row.interests), segment=row.segment,
                  answers={k: v for k, v in (("spend_per_order", row.spend_per_order),
                                             ("buyer_type", row.buyer_type),
                                             ("region", row.region)) if v})
            for row in said.itertuples()]
    return {"returning": [Query(user=str(data.users[i])) for i in known], "cold": cold}


def fit_each(data: TrainingData, cache: Path) -> None:
    """Each component's fit time and peak traced memory, as ratios to popularity's."""
    stats = {}
    for comp in default_components(cache_dir=cache):
        tracemalloc.start()
        start = time.perf_counter()
        comp.fit_data(data)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        stats[comp.name] = (seconds, peak)
    base_s, base_mb = stats["popularity"]
    print(f"  {'fit':<12}{'seconds':>10}{'x pop':>8}{'peak MB':>10}{'x pop':>8}")
    for name, (seconds, peak) in stats.items():
        print(f"  {name:<12}{seconds:>10.3f}{seconds / max(base_s, 1e-6):>8.0f}"
              f"{peak:>10.1f}{peak / max(base_mb, 1e-6):>8.0f}")


def run(data: TrainingData, label: str, n: int, k: int, cache: Path) -> None:
    print(f"\n{label}: {len(data.users):,} profiles, {len(data.items):,} items, "
          f"{data.matrix.nnz:,} user-item pairs")
    fit_each(data, cache)
    start = time.perf_counter()
    hybrid = HybridRecommender(default_components(cache_dir=cache)).fit_data(data)
    print(f"  hybrid (all components) fit {time.perf_counter() - start:.2f} s")
    models = {**hybrid.components_, "hybrid": hybrid}
    asked = queries(data, n)
    for model in models.values():  # warm-up: first-call costs are not request latency
        model.recommend(asked["returning"][0], k=k)
        model.recommend(asked["cold"][0], k=k)
    times = {name: {kind: [] for kind in asked} for name in models}
    for i in range(n):
        for kind, qs in asked.items():
            for name, model in models.items():
                t = time.perf_counter()
                model.recommend(qs[i], k=k, exclude_seen=True)
                times[name][kind].append((time.perf_counter() - t) * 1000)
    base = {kind: np.percentile(times["popularity"][kind], 50) for kind in asked}
    print(f"  {'recommender':<12}" + "".join(
        f"{kind + ' p50':>15}{'p95':>9}{'x pop':>8}" for kind in asked) + "   (ms)")
    for name, by_kind in times.items():
        cells = ""
        for kind, values in by_kind.items():
            p50, p95 = np.percentile(values, [50, 95])
            cells += f"{p50:>15.2f}{p95:>9.2f}{p50 / base[kind]:>8.1f}"
        print(f"  {name:<12}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--scales", default="1,x10",
                        help="1 = the real data, xM = M times its customers, N = N customers")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "online_retail.csv.gz")
    parser.add_argument("--chroma", action="store_true",
                        help="also measure the Chroma profile index (recall, latency)")
    args = parser.parse_args()

    start = time.perf_counter()
    loaded = load_interactions(args.data)
    context = ev.build_context(loaded, loaded.events)
    print(f"loaded and profiled {args.data.name} in {time.perf_counter() - start:.1f} s")
    real = len(context.data.users)
    sizes = [real * int(s[1:]) if s.startswith("x") else int(s)
             for s in args.scales.split(",")]
    for scale in sizes:
        if scale == 1:
            run(context.data, "real data", args.requests, args.k, args.cache)
        else:
            run(scaled(context.data, scale), f"resampled to {scale:,} ({scale / real:g}x)",
                args.requests, args.k, args.cache)
    if args.chroma:
        import runpy
        import sys

        sys.argv = [str(Path(__file__).with_name("chroma_recall.py")), "--sizes", "4338",
                    *[str(s) for s in sizes if s != 1]]
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
