"""Predicted customer value (BG/NBD purchases x Gamma-Gamma order value,
assistant.insights.value) against a naive baseline on Online Retail.

Protocol (``value.validate``): fit on the orders before --calibration-end; for each customer
seen by then, predict the purchases (purchase days: a customer's orders on one calendar day
count as one) and the revenue in the next --horizon days, and compare with what they did.
Baseline: the customer's purchases and revenue in the --horizon days just before
--calibration-end, carried forward. Customers first seen in the holdout are not counted.

The BG/NBD's penalizer (an L2 pull on its log-parameters) is chosen by
``value.choose_penalizer`` on an inner split of the orders before --calibration-end only
(fit before calibration-end - horizon, score purchase MAE in the last --horizon days before
calibration-end), unless --penalizer is given; the Gamma-Gamma model is fitted with 0.

Printed: the chosen penalizer and its inner scores; MAE and RMSE of the model and the
baseline and their ratio (model / baseline, below 1 = the model is better), next to the
ratio of the plain ML fit (penalizer 0) for comparison; the totals next to the actual; the
fitted parameters of both fits; the share of customers with P(alive) < 0.5; and the times
(summary + both fits, and the penalizer choice, best of --repeat).

    .venv/bin/python bench/value.py [--calibration-end 2011-09-01] [--horizon 90]
                                    [--penalizer P] [--repeat 3] [--data PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.insights.purchases import purchases  # noqa: E402
from assistant.insights.value import (  # noqa: E402
    choose_penalizer,
    fit_bgnbd,
    fit_gamma_gamma,
    rfm_summary,
    validate,
)
from assistant.orders.ingest import load_orders  # noqa: E402


def best_of(repeat: int, call) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t)
    return best


def fit_seconds(buys: pd.DataFrame, calibration_end: str, penalizer: float,
                repeat: int) -> float:
    """Best time of ``repeat`` runs of the calibration summary and both fits."""
    def run() -> None:
        summary = rfm_summary(buys, end=calibration_end)
        fit_bgnbd(summary, penalizer=penalizer)
        fit_gamma_gamma(summary)
    return best_of(repeat, run)


def share_below_half(orders: pd.DataFrame, calibration_end: str, penalizer: float) -> str:
    """P(alive) < 0.5 at calibration_end: share of all customers and of repeat ones."""
    buys = purchases(orders, until=calibration_end)
    summary = rfm_summary(buys, end=calibration_end)
    alive = fit_bgnbd(summary, penalizer=penalizer).p_alive(summary)
    repeat = summary["x"] > 0
    return (f"P(alive) < 0.5 for {(alive < 0.5).mean():.1%} of customers "
            f"({(alive[repeat] < 0.5).mean():.1%} of repeat ones), median "
            f"{alive.median():.3f} ({alive[repeat].median():.3f})")


def print_params(label: str, got: dict[str, Any]) -> None:
    bg, gg = got["params"]["bgnbd"], got["params"]["gamma_gamma"]
    print(f"{label}\n  BG/NBD (days): r={bg['r']:.4g} alpha={bg['alpha']:.4g} a={bg['a']:.4g} "
          f"b={bg['b']:.4g} mean dropout per purchase={bg['mean_dropout']:.4g} "
          f"LL={bg['log_likelihood']:.1f} converged={bg['converged']}")
    print(f"  Gamma-Gamma: p={gg['p']:.4g} q={gg['q']:.4g} v={gg['v']:.4g} "
          f"population mean={gg['population_mean']:.2f} LL={gg['log_likelihood']:.1f} "
          f"converged={gg['converged']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibration-end", default="2011-09-01")
    parser.add_argument("--horizon", type=int, default=90, help="holdout length in days")
    parser.add_argument("--penalizer", type=float, default=None,
                        help="BG/NBD penalizer (default: chosen on the inner split)")
    parser.add_argument("--repeat", type=int, default=3, help="timed fits (best is kept)")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "online_retail.csv.gz")
    args = parser.parse_args()

    t = time.perf_counter()
    orders = load_orders(args.data).orders
    print(f"{len(orders):,} order lines loaded in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    got = validate(orders, calibration_end=args.calibration_end, horizon_days=args.horizon,
                   penalizer=args.penalizer)
    total = time.perf_counter() - t
    plain = validate(orders, calibration_end=args.calibration_end, horizon_days=args.horizon,
                     penalizer=0.0)
    penalizer = got["penalizer"]
    print(f"calibration end {got['calibration_end']}, holdout {got['horizon_days']} days: "
          f"{got['customers']:,} customers ({got['repeat_customers']:,} with a repeat "
          f"purchase, {got['active_in_holdout']:,} buying in the holdout)")
    print(f"unit: {got['unit']}\n")

    scores = got["penalizer_scores"]
    if scores is None:
        print(f"BG/NBD penalizer {penalizer:g} (given)\n")
    else:
        print(f"BG/NBD penalizer {penalizer:g}, chosen on the inner split: fit before "
              f"{scores['inner_calibration_end']}, scored on "
              f"[{scores['inner_calibration_end']}, {scores['end']}) "
              f"({scores['customers']:,} customers, {scores['repeat_customers']:,} with a "
              f"repeat, {scores['history_days']:.0f} days of history)")
        if scores["fallback"]:
            print(f"  fallback: {scores['fallback']}")
        for value, mae in scores["mae"].items():
            mark = "  <- chosen" if value == penalizer else ""
            print(f"  penalizer {value:<8g} inner purchase MAE "
                  f"{'-' if mae is None else f'{mae:.4f}'}{mark}")
        if scores["baseline_mae"] is not None:
            print(f"  inner baseline (last {args.horizon} days carried forward) MAE "
                  f"{scores['baseline_mae']:.4f}")
        print()

    print(f"{'':22}{'model':>12}{'baseline':>12}{'ratio':>8}{'ratio at 0':>12}")
    for quantity in ("purchases", "revenue"):
        q, q0 = got[quantity], plain[quantity]
        for metric in ("mae", "rmse"):
            ratio, ratio0 = q["ratio"][metric], q0["ratio"][metric]
            print(f"{quantity + ' ' + metric.upper():22}{q['model'][metric]:>12.3f}"
                  f"{q['baseline'][metric]:>12.3f}"
                  f"{'-' if ratio is None else f'{ratio:.3f}':>8}"
                  f"{'-' if ratio0 is None else f'{ratio0:.3f}':>12}")
    print(f"\n{'total':22}{'model':>12}{'baseline':>12}{'actual':>14}{'model at 0':>14}")
    for quantity in ("purchases", "revenue"):
        tot = got[quantity]["total"]
        print(f"{quantity:22}{tot['model']:>12,.0f}{tot['baseline']:>12,.0f}"
              f"{tot['actual']:>14,.0f}{plain[quantity]['total']['model']:>14,.0f}")

    print()
    print_params(f"penalizer {penalizer:g}:", got)
    print(f"  {share_below_half(orders, args.calibration_end, penalizer)}")
    print_params("penalizer 0 (plain ML):", plain)
    print(f"  {share_below_half(orders, args.calibration_end, 0.0)}")

    buys = purchases(orders, until=args.calibration_end)
    fit = fit_seconds(buys, args.calibration_end, penalizer, args.repeat)
    choose = best_of(args.repeat, lambda: choose_penalizer(
        buys, end=args.calibration_end, horizon_days=args.horizon))
    print(f"\nfit (summary + both models): {fit:.3f} s; choosing the penalizer "
          f"({len(scores['mae']) if scores else 0} inner fits): {choose:.3f} s "
          f"(best of {args.repeat}); validate end to end: {total:.3f} s")


if __name__ == "__main__":
    main()
