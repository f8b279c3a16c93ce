"""Per-customer feature build (assistant.orders.features.build_features) vs DuckDB, same data,
same run.

    .venv/bin/python bench/features.py [--scales 1,20] [--repeat 3] [--data PATH]
                                       [--duckdb-threads N]

Data: the Online Retail file (data/online_retail.csv.gz, else the shared copy), read by a
minimal loader in this file: pandas read_csv, drop rows without CustomerID, parse dates,
amount = Quantity * UnitPrice, is_return = InvoiceNo starts with "C" or Quantity < 0. The real
ingest is assistant.orders.ingest.load_orders (column mapping, validation, rejected-row report);
this bench isolates the feature step, so it only needs the canonical frame. At scale xN the
frame is replicated N times with distinct customer and order ids per replica (id + "-r{i}"),
built once by the parent process and handed to the arms as an Arrow (Feather) file. x20 is
8.1 M rows: the 10.8 M of issue 3 also count the 135,080 rows without a CustomerID, which the
loader drops.

Arms, each in its own subprocess (so that neither inherits the other's allocator caches and
peak memory is the arm's own):
- pandas: everything build_features does (all feature columns, not only the RFM ones), on one
  core.
- duckdb: duckdb.sql on the same pandas frame, recency / frequency / monetary / tenure /
  distinct items per customer with the same definitions, including producing a pandas result;
  DuckDB's default thread count (all cores).
Both subprocesses load the frame first, then run in turns (pandas, duckdb, pandas, ...; never
both at once), so a change in the machine's load hits both arms alike.
Time: best of --repeat runs (all runs are printed; the first one of each arm is the cold one:
fresh allocator, first page faults). Peak MB: the highest resident memory during the runs minus the
resident memory before them, after the load and after the allocators have returned their free
memory (Linux VmHWM, reset through /proc/self/clear_refs; ru_maxrss if that reset is not
allowed, which then includes the load).

The two results must agree on recency, frequency, monetary, tenure and distinct items for every
customer (and on the set of customers), or the bench fails. Goal: pandas/duckdb <= 1.5 at x20.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
DATA_CANDIDATES = (
    REPO / "data" / "online_retail.csv.gz",
    REPO.parent / "shared" / "data" / "online-retail" / "online_retail.csv.gz",
)
GOAL_RATIO = 1.5
GOAL_SCALE = 20
CHECKED = ("recency_days", "frequency", "monetary", "tenure_days", "distinct_items")

# Same definitions as assistant.orders.features: purchases are rows with is_return false; dates are
# calendar days; the reference date is the day after the last order; monetary is net (sum of
# all amounts, returns being negative); customers without a purchase are left out.
DUCKDB_SQL = """
with ref as (select max("timestamp")::date + 1 as day from orders)
select
    customer,
    date_diff('day', (max("timestamp") filter (where not is_return))::date,
              (select day from ref)) as recency_days,
    count(distinct order_id) filter (where not is_return) as frequency,
    sum(amount) as monetary,
    date_diff('day', (min("timestamp") filter (where not is_return))::date,
              (select day from ref)) as tenure_days,
    count(distinct item) filter (where not is_return) as distinct_items
from orders
group by customer
having count(*) filter (where not is_return) > 0
"""


# --- data ------------------------------------------------------------------------------------


def load_csv(path: Path) -> pd.DataFrame:
    """The Online Retail CSV as the canonical orders frame (minimal cleaning, see docstring)."""
    text = {c: "string" for c in ("InvoiceNo", "StockCode", "Description", "CustomerID",
                                  "Country")}
    raw = pd.read_csv(path, dtype=text)
    raw = raw[raw["CustomerID"].notna()]
    quantity = raw["Quantity"].astype("float64")
    price = raw["UnitPrice"].astype("float64")
    invoice = raw["InvoiceNo"]
    orders = pd.DataFrame(
        {
            "customer": raw["CustomerID"].str.removesuffix(".0"),
            "order_id": invoice,
            "timestamp": pd.to_datetime(raw["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
            .astype("datetime64[ns]"),
            "item": raw["StockCode"],
            "description": raw["Description"],
            "quantity": quantity,
            "unit_price": price,
            "amount": quantity * price,
            "country": raw["Country"],
            "is_return": (invoice.str.startswith("C") | (quantity < 0)).astype(bool),
        }
    )
    return orders.reset_index(drop=True)


def replicate(orders: pd.DataFrame, times: int) -> pd.DataFrame:
    """``times`` copies with distinct customer and order ids per copy (x1: the frame itself)."""
    if times == 1:
        return orders
    parts = []
    for i in range(times):
        part = orders.copy(deep=False)
        part["customer"] = orders["customer"] + f"-r{i}"
        part["order_id"] = orders["order_id"] + f"-r{i}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


# --- arms (run in a child process) ---------------------------------------------------------------


def pandas_arm(orders: pd.DataFrame) -> pd.DataFrame:
    from assistant.orders.features import build_features

    return build_features(orders)


def duckdb_arm(orders: pd.DataFrame) -> pd.DataFrame:
    import duckdb

    return duckdb.sql(DUCKDB_SQL).df()  # ``orders`` is found by DuckDB's replacement scan


ARMS = {"pandas": pandas_arm, "duckdb": duckdb_arm}


def _rss_mb(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024


def release_free_memory() -> None:
    """Hand memory the allocators keep for reuse back to the system, so that the baseline is
    the data itself (reading the Feather file leaves ~300 MB in Arrow's pool at x20, which the
    pool returns at an unpredictable moment later and would make the peak look smaller)."""
    import ctypes

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: skip
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_child(arm: str, source: Path, result: Path, duckdb_threads: int | None) -> None:
    """Serve one arm: load the frame, then on each "run" line from stdin time one run and print
    {"time": s}; on "done", save the last result and print the peak memory."""
    orders = pd.read_feather(source)
    if arm == "duckdb":
        import duckdb  # import and start-up outside the timing, like pandas' import

        if duckdb_threads:
            duckdb.sql(f"set threads = {int(duckdb_threads)}")
        duckdb.sql("select 1").fetchall()
        threads = duckdb.sql("select current_setting('threads')").fetchall()[0][0]
    else:
        import assistant.orders.features  # noqa: F401

        threads = 1
    release_free_memory()
    base = _rss_mb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        peak_of = "VmHWM"
    except OSError:
        peak_of = "ru_maxrss"
    print(json.dumps({"ready": True}), flush=True)
    out = None
    for line in sys.stdin:
        if line.strip() != "run":
            break
        out = None
        gc.collect()
        t0 = time.perf_counter()
        out = ARMS[arm](orders)
        print(json.dumps({"time": time.perf_counter() - t0}), flush=True)
    if peak_of == "VmHWM":
        peak = _rss_mb("VmHWM")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if out is not None:
        out.to_pickle(result)
    print(json.dumps({"peak_mb": peak - base, "base_mb": base, "peak_of": peak_of,
                      "threads": threads}), flush=True)


class Arm:
    """A child process serving one arm (see run_child)."""

    def __init__(self, arm: str, source: Path, result: Path, duckdb_threads: int | None
                 ) -> None:
        self.arm = arm
        self.result = result
        cmd = [sys.executable, __file__, "--child", arm, "--source", str(source),
               "--result", str(result)]
        if duckdb_threads:
            cmd += ["--duckdb-threads", str(duckdb_threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=REPO)
        self.times: list[float] = []
        self._reply()  # ready

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise SystemExit(f"the {self.arm} arm failed (exit code {self.proc.returncode})")
        return json.loads(line)

    def run(self) -> None:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        self.times.append(self._reply()["time"])

    def finish(self) -> dict:
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        info = self._reply()
        self.proc.wait()
        return info | {"times": self.times}


def measure(source: Path, tmp: Path, scale: int, repeat: int, duckdb_threads: int | None
            ) -> dict[str, dict]:
    """Both arms alive at once, runs interleaved (pandas, duckdb, pandas, ...) so that changing
    load on the machine hits both alike; only one runs at a time."""
    arms = {arm: Arm(arm, source, tmp / f"{arm}-x{scale}.pkl", duckdb_threads) for arm in ARMS}
    for _ in range(repeat):
        for arm in arms.values():
            arm.run()
    return {name: arm.finish() for name, arm in arms.items()}


# --- agreement --------------------------------------------------------------------------------


def check_agreement(features: pd.DataFrame, sql: pd.DataFrame) -> None:
    sql = sql.set_index("customer")
    sql.index = sql.index.astype(str)
    ours = features.copy()
    ours.index = ours.index.astype(str)
    missing = ours.index.symmetric_difference(sql.index)
    assert missing.empty, f"customer sets differ on {len(missing)} ids, e.g. {list(missing[:5])}"
    sql = sql.reindex(ours.index)
    for col in CHECKED:
        a = ours[col].to_numpy(dtype=np.float64)
        b = sql[col].to_numpy(dtype=np.float64)
        ok = np.isclose(a, b, rtol=1e-9, atol=1e-6) if col == "monetary" else a == b
        bad = np.flatnonzero(~ok)
        assert bad.size == 0, (
            f"{col} differs for {bad.size} customers, e.g. {ours.index[bad[0]]}: "
            f"pandas {a[bad[0]]} vs duckdb {b[bad[0]]}"
        )


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,20", help="comma-separated replication factors")
    parser.add_argument("--repeat", type=int, default=3, help="runs per arm (best is kept)")
    parser.add_argument("--data", type=Path, default=None, help="Online Retail CSV(.gz)")
    parser.add_argument("--duckdb-threads", type=int, default=None,
                        help="DuckDB threads (default: DuckDB's own, all cores)")
    parser.add_argument("--child", choices=sorted(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run_child(args.child, args.source, args.result, args.duckdb_threads)
        return 0

    path = args.data or next((p for p in DATA_CANDIDATES if p.exists()), None)
    if path is None or not path.exists():
        raise SystemExit(f"No Online Retail file at {', '.join(map(str, DATA_CANDIDATES))}.")
    scales = [int(s) for s in args.scales.split(",")]
    t0 = time.perf_counter()
    base = load_csv(path)
    print(f"loaded {path} ({len(base):,} rows after cleaning) in {time.perf_counter() - t0:.1f} s")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        for scale in scales:
            frame = replicate(base, scale)
            source = Path(tmp) / f"x{scale}.feather"
            frame.to_feather(source)
            n_rows = len(frame)
            del frame
            measured = measure(source, Path(tmp), scale, args.repeat, args.duckdb_threads)
            check_agreement(pd.read_pickle(Path(tmp) / f"pandas-x{scale}.pkl"),
                            pd.read_pickle(Path(tmp) / f"duckdb-x{scale}.pkl"))
            pandas_s = min(measured["pandas"]["times"])
            duckdb_s = min(measured["duckdb"]["times"])
            rows.append((scale, n_rows, pandas_s, duckdb_s, pandas_s / duckdb_s,
                         measured["pandas"]["peak_mb"], measured["duckdb"]["peak_mb"]))
            runs = "; ".join(f"{arm} " + " ".join(f"{t:.2f}" for t in m["times"])
                             + f" ({m['threads']} thread{'s' if m['threads'] != 1 else ''})"
                             for arm, m in measured.items())
            print(f"x{scale}: results agree on {', '.join(CHECKED)}; runs (s): {runs}")

    print()
    print(f"{'scale':>5} {'rows':>11} {'pandas s':>9} {'duckdb s':>9} {'pandas/duckdb':>14} "
          f"{'pandas peak MB':>15} {'duckdb peak MB':>15}")
    for scale, n_rows, p, d, ratio, pm, dm in rows:
        print(f"{'x' + str(scale):>5} {n_rows:>11,} {p:>9.2f} {d:>9.2f} {ratio:>14.2f} "
              f"{pm:>15.0f} {dm:>15.0f}")
    goal = [r for r in rows if r[0] == GOAL_SCALE]
    if goal:
        ratio = goal[0][4]
        verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
        print(f"\ngoal (pandas/duckdb <= {GOAL_RATIO} at x{GOAL_SCALE}): {verdict} "
              f"({ratio:.2f})")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
