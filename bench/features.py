"""The feature step of ``segments build``, pandas vs DuckDB, end to end from one Parquet file;
and (``--mode kernel``) the in-memory feature build vs a DuckDB SQL peer.

    .venv/bin/python bench/features.py [--scales 1,20,100] [--repeat 2] [--data PATH]
                                       [--mode e2e|kernel] [--duckdb-threads N]
                                       [--cap-gb GB] [--max-repeat-seconds S]

Data: the Online Retail file (data/online_retail.csv.gz, else the shared copy). At scale xN
it is replicated N times with distinct customer and invoice ids per replica (id + "-r{i}";
rows without a CustomerID stay without one).

``--mode e2e`` (the default; what picks ``segments build --engine auto``'s rule): the raw file
(every row, 541,909 per replica, the columns as shipped, InvoiceDate as a Parquet timestamp)
written replica by replica into one Parquet file, and two arms reading it:
- pandas: what ``segments build --engine pandas`` runs for its feature step,
  ``load_orders`` (read with pandas, map, validate) + ``assign_groups`` + ``build_features``;
  one core.
- duckdb: ``build_features_duckdb`` on the same file (same rules, out of core); DuckDB's
  default thread count (all cores), its memory limit half the memory available.
Neither writes the rejected rows (both can; that is a report, not the feature step). The two
results must be the same frame (index, columns, dtypes, values within 1e-9 relative, attrs)
with the same row counts and rejects per reason, or the bench fails.
A pandas run whose resident memory passes ``--cap-gb`` (default 75 % of the memory available
at the start) is stopped and reported as such: that is a result, not a crash.

``--mode kernel`` (the earlier comparison): the canonical frame from a minimal loader in
this file (pandas read_csv, drop rows without CustomerID, parse dates, amount = Quantity *
UnitPrice, is_return = InvoiceNo starts with "C" or Quantity < 0), handed to the arms as an
Arrow (Feather) file; arms: build_features on it (one core) vs duckdb.sql on the same pandas
frame (recency / frequency / monetary / tenure / distinct items with the same definitions).
The results must agree on those for every customer.

Each arm runs in its own subprocess (so that neither inherits the other's allocator caches
and peak memory is the arm's own); both are started first, then run in turns (pandas, duckdb,
pandas, ...; never both at once), so a change in the machine's load hits both arms alike.
Time: best of --repeat runs (all runs are printed; the first one of each arm is the cold one);
an arm whose run took more than --max-repeat-seconds is not run again. Peak MB: the highest
resident memory during the runs minus the resident memory before them (e2e: after the
imports, before reading anything; kernel: after the load), after the allocators have
returned their free memory (Linux VmHWM, reset through /proc/self/clear_refs; ru_maxrss if
that reset is not allowed).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
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


def write_raw_parquet(path: Path, times: int, target: Path) -> int:
    """The raw Online Retail file replicated ``times`` times into one Parquet file, one
    replica per row group (so the parent never holds more than one): InvoiceNo, StockCode,
    Description, CustomerID, Country as text, Quantity int64, UnitPrice float64, InvoiceDate
    a timestamp. Returns the rows written."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    text = {c: "string" for c in ("InvoiceNo", "StockCode", "Description", "CustomerID",
                                  "Country")}
    raw = pd.read_csv(path, dtype=text)
    raw["InvoiceDate"] = pd.to_datetime(raw["InvoiceDate"], format="%Y-%m-%d %H:%M:%S")
    raw["CustomerID"] = raw["CustomerID"].str.removesuffix(".0")
    base = pa.Table.from_pandas(raw, preserve_index=False)
    rows = 0
    with pq.ParquetWriter(target, base.schema) as writer:
        for i in range(times):
            part = base
            if times > 1:
                for col in ("CustomerID", "InvoiceNo"):
                    j = part.schema.get_field_index(col)
                    kind = part.schema.field(col).type
                    part = part.set_column(j, col, pc.binary_join_element_wise(
                        part[col], pa.scalar(f"-r{i}", kind), pa.scalar("", kind)))
            writer.write_table(part, row_group_size=len(part))
            rows += len(part)
    return rows


# --- arms (run in a child process) ---------------------------------------------------------------


def pandas_arm(orders: pd.DataFrame) -> pd.DataFrame:
    from assistant.orders.features import build_features

    return build_features(orders)


def duckdb_arm(orders: pd.DataFrame) -> pd.DataFrame:
    import duckdb

    return duckdb.sql(DUCKDB_SQL).df()  # ``orders`` is found by DuckDB's replacement scan


def pandas_e2e_arm(path: Path) -> tuple[pd.DataFrame, dict]:
    """``segments build --engine pandas``'s feature step."""
    from assistant.orders.catalog import assign_groups, load_group_rules
    from assistant.orders.features import build_features
    from assistant.orders.ingest import load_orders

    rules = load_group_rules()
    ingest = load_orders(path)
    orders = ingest.orders
    orders["group"] = assign_groups(orders["description"], rules)
    features = build_features(orders, groups=sorted(rules.names))
    return features, {"rows_read": ingest.rows_read, "rows_used": ingest.rows_used,
                      "returns": ingest.returns, "rejected": ingest.rejected}


def duckdb_e2e_arm(path: Path, threads: int | None = None) -> tuple[pd.DataFrame, dict]:
    """``segments build --engine duckdb``'s feature step."""
    from assistant.orders.catalog import load_group_rules
    from assistant.orders.features_duckdb import build_features_duckdb

    rules = load_group_rules()
    features, info = build_features_duckdb(path, groups=sorted(rules.names), rules=rules,
                                           threads=threads)
    return features, {k: info[k] for k in ("rows_read", "rows_used", "returns", "rejected",
                                           "threads")}


ARMS = {"pandas": pandas_arm, "duckdb": duckdb_arm}
E2E_ARMS = {"pandas": pandas_e2e_arm, "duckdb": duckdb_e2e_arm}


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


def run_child(arm: str, source: Path, result: Path, duckdb_threads: int | None,
              mode: str = "kernel") -> None:
    """Serve one arm: load the frame (kernel) or only the imports (e2e), then on each "run"
    line from stdin time one run and print {"time": s}; on "done", save the last result and
    print the peak memory."""
    if mode == "e2e":
        return run_e2e_child(arm, source, result, duckdb_threads)
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
    out, base, peak, peak_of = _serve_runs(lambda: ARMS[arm](orders))
    if out is not None:
        out.to_pickle(result)
    print(json.dumps({"peak_mb": peak - base, "base_mb": base, "peak_of": peak_of,
                      "threads": threads}), flush=True)


def _serve_runs(run):
    """The child's protocol: say ready, then time ``run()`` once per "run" line on stdin
    (the previous result dropped first); returns (the last result, base MB, peak MB, how
    the peak was read)."""
    base, peak_of = _measure_start()
    print(json.dumps({"ready": True}), flush=True)
    out = None
    for line in sys.stdin:
        if line.strip() != "run":
            break
        out = None
        gc.collect()
        t0 = time.perf_counter()
        out = run()
        print(json.dumps({"time": time.perf_counter() - t0}), flush=True)
    return out, base, _peak_mb(peak_of), peak_of


def _measure_start() -> tuple[float, str]:
    release_free_memory()
    base = _rss_mb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        return base, "VmHWM"
    except OSError:
        return base, "ru_maxrss"


def _peak_mb(peak_of: str) -> float:
    if peak_of == "VmHWM":
        return _rss_mb("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_e2e_child(arm: str, source: Path, result: Path, duckdb_threads: int | None) -> None:
    """An e2e arm: imports first (outside the timing, like any start-up), then the runs."""
    import assistant.orders.catalog  # noqa: F401
    import assistant.orders.features  # noqa: F401
    import assistant.orders.ingest  # noqa: F401

    if arm == "duckdb":
        import duckdb  # noqa: F401

        import assistant.orders.features_duckdb  # noqa: F401
    out, base, peak, peak_of = _serve_runs(
        lambda: E2E_ARMS[arm](source, duckdb_threads) if arm == "duckdb"
        else E2E_ARMS[arm](source))
    threads = 1
    if out is not None:
        threads = out[1].pop("threads", 1)
        pd.to_pickle(out, result)
    print(json.dumps({"peak_mb": peak - base, "base_mb": base, "peak_of": peak_of,
                      "threads": threads}), flush=True)


class Arm:
    """A child process serving one arm (see run_child). ``cap_mb``: stop the child when its
    resident memory passes this (checked 10 times a second)."""

    def __init__(self, arm: str, source: Path, result: Path, duckdb_threads: int | None,
                 mode: str = "kernel", cap_mb: float | None = None) -> None:
        self.arm = arm
        self.result = result
        cmd = [sys.executable, __file__, "--child", arm, "--source", str(source),
               "--result", str(result), "--mode", mode]
        if duckdb_threads:
            cmd += ["--duckdb-threads", str(duckdb_threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=REPO)
        self.times: list[float] = []
        self.capped: float | None = None  # the resident MB at which the child was stopped
        self.max_rss = 0.0
        self.cap_mb = cap_mb
        self._watching = True
        if cap_mb:
            threading.Thread(target=self._watch, daemon=True).start()
        self._reply()  # ready

    def _watch(self) -> None:
        status = Path(f"/proc/{self.proc.pid}/status")
        while self._watching and self.proc.poll() is None:
            try:
                rss = int(re.search(r"VmRSS:\s+(\d+)", status.read_text()).group(1)) / 1024
            except (OSError, AttributeError):
                return
            self.max_rss = max(self.max_rss, rss)
            if rss > self.cap_mb:
                self.capped = rss
                self.proc.kill()
                return
            time.sleep(0.1)

    def _reply(self) -> dict | None:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            if self.capped is not None:
                return None
            raise SystemExit(f"the {self.arm} arm failed (exit code {self.proc.returncode})")
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.capped is None and self.proc.poll() is None

    def run(self) -> None:
        if not self.alive:
            return
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        reply = self._reply()
        if reply is not None:
            self.times.append(reply["time"])

    def finish(self) -> dict:
        if not self.alive:
            return {"times": self.times, "capped_mb": self.capped, "peak_mb": self.max_rss,
                    "threads": 1}
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        info = self._reply()
        self.proc.wait()
        self._watching = False
        return info | {"times": self.times, "capped_mb": None}


def measure(source: Path, tmp: Path, scale: int, repeat: int, duckdb_threads: int | None
            ) -> dict[str, dict]:
    """Both arms alive at once, runs interleaved (pandas, duckdb, pandas, ...) so that changing
    load on the machine hits both alike; only one runs at a time."""
    arms = {arm: Arm(arm, source, tmp / f"{arm}-x{scale}.pkl", duckdb_threads) for arm in ARMS}
    for _ in range(repeat):
        for arm in arms.values():
            arm.run()
    return {name: arm.finish() for name, arm in arms.items()}


def measure_e2e(source: Path, tmp: Path, scale: int, repeat: int, duckdb_threads: int | None,
                cap_mb: float, max_repeat_s: float) -> dict[str, dict]:
    """Both e2e arms alive at once, runs interleaved; the pandas arm under the memory cap."""
    arms = {arm: Arm(arm, source, tmp / f"{arm}-e2e-x{scale}.pkl", duckdb_threads, "e2e",
                     cap_mb if arm == "pandas" else None) for arm in E2E_ARMS}
    for i in range(repeat):
        for arm in arms.values():
            if i and arm.times and arm.times[-1] > max_repeat_s:
                continue  # one run of minutes says enough
            arm.run()
    return {name: arm.finish() for name, arm in arms.items()}


# --- agreement --------------------------------------------------------------------------------


def check_same_frame(a: pd.DataFrame, b: pd.DataFrame, info_a: dict, info_b: dict) -> None:
    """The e2e arms' results are the same frame and the same ingest counts."""
    for key in ("rows_read", "rows_used", "returns", "rejected"):
        assert info_a[key] == info_b[key], f"{key}: pandas {info_a[key]} vs duckdb {info_b[key]}"
    assert list(a.columns) == list(b.columns), (
        f"columns differ: {list(a.columns)} vs {list(b.columns)}")
    assert a.index.equals(b.index) and a.index.dtype == b.index.dtype, "customer index differs"
    assert a.attrs == b.attrs, f"attrs differ: {a.attrs} vs {b.attrs}"
    for col in a.columns:
        assert a[col].dtype == b[col].dtype, f"{col}: dtype {a[col].dtype} vs {b[col].dtype}"
        if a[col].dtype.kind == "f":
            ok = np.isclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-9, atol=1e-6,
                            equal_nan=True)
        else:
            ok = (a[col] == b[col]).to_numpy(dtype=bool)
        bad = np.flatnonzero(~ok)
        assert bad.size == 0, (f"{col} differs for {bad.size} customers, e.g. "
                               f"{a.index[bad[0]]}: pandas {a[col].iloc[bad[0]]} vs duckdb "
                               f"{b[col].iloc[bad[0]]}")




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
    parser.add_argument("--mode", choices=("e2e", "kernel"), default="e2e",
                        help="e2e: segments build's feature step from a Parquet file, pandas "
                             "vs DuckDB (default); kernel: build_features vs a DuckDB SQL peer "
                             "on an in-memory frame")
    parser.add_argument("--scales", default="1,20,100",
                        help="comma-separated replication factors")
    parser.add_argument("--repeat", type=int, default=2, help="runs per arm (best is kept)")
    parser.add_argument("--max-repeat-seconds", type=float, default=120.0,
                        help="an arm whose run took longer is not run again")
    parser.add_argument("--cap-gb", type=float, default=None,
                        help="e2e: stop the pandas arm above this resident memory (default: "
                             "75%% of the memory available at the start)")
    parser.add_argument("--data", type=Path, default=None, help="Online Retail CSV(.gz)")
    parser.add_argument("--duckdb-threads", type=int, default=None,
                        help="DuckDB threads (default: DuckDB's own, all cores)")
    parser.add_argument("--child", choices=sorted(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        run_child(args.child, args.source, args.result, args.duckdb_threads, args.mode)
        return 0

    path = args.data or next((p for p in DATA_CANDIDATES if p.exists()), None)
    if path is None or not path.exists():
        raise SystemExit(f"No Online Retail file at {', '.join(map(str, DATA_CANDIDATES))}.")
    scales = [int(s) for s in args.scales.split(",")]
    if args.mode == "e2e":
        return main_e2e(args, path, scales)
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


def main_e2e(args: argparse.Namespace, path: Path, scales: list[int]) -> int:
    """pandas vs DuckDB, end to end from one Parquet file per scale (see the docstring)."""
    import pyarrow.parquet as pq

    from assistant.orders.features_duckdb import available_memory

    t0 = time.perf_counter()
    free_mb = available_memory() / 2**20
    cap_mb = args.cap_gb * 1024 if args.cap_gb else 0.75 * free_mb
    print(f"memory available {free_mb / 1024:.1f} GiB; pandas arm stopped above "
          f"{cap_mb / 1024:.1f} GiB; {os.cpu_count()} cores")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        for scale in scales:
            source = Path(tmp) / f"orders-x{scale}.parquet"
            t1 = time.perf_counter()
            n_rows = write_raw_parquet(path, scale, source)
            meta = pq.read_metadata(source)
            cells = meta.num_rows * meta.num_columns
            print(f"x{scale}: {n_rows:,} rows x {meta.num_columns} columns, Parquet "
                  f"{source.stat().st_size / 2**20:,.0f} MB, written in "
                  f"{time.perf_counter() - t1:.0f} s", flush=True)
            m = measure_e2e(source, Path(tmp), scale, args.repeat, args.duckdb_threads, cap_mb,
                            args.max_repeat_seconds)
            p, d = m["pandas"], m["duckdb"]
            runs = "; ".join(f"{arm} " + " ".join(f"{t:.2f}" for t in r["times"])
                             + f" ({r['threads']} thread{'s' if r['threads'] != 1 else ''})"
                             for arm, r in m.items())
            if p["capped_mb"] is None:
                fp, ip = pd.read_pickle(Path(tmp) / f"pandas-e2e-x{scale}.pkl")
                fd, idd = pd.read_pickle(Path(tmp) / f"duckdb-e2e-x{scale}.pkl")
                check_same_frame(fp, fd, ip, idd)
                print(f"x{scale}: the same {fp.shape[0]:,} x {fp.shape[1]} features, rows and "
                      f"rejects; runs (s): {runs}", flush=True)
            else:
                print(f"x{scale}: pandas STOPPED at {p['capped_mb'] / 1024:.1f} GiB resident "
                      f"(cap {cap_mb / 1024:.1f} GiB) after {time.perf_counter() - t1:.0f} s; "
                      f"runs (s): {runs}", flush=True)
            rows.append((scale, n_rows, cells, p, d))
            source.unlink()

    print()
    print(f"{'scale':>5} {'rows':>11} {'pandas s':>9} {'duckdb s':>9} "
          f"{'pandas/duckdb':>14} {'pandas peak MB':>15} {'duckdb peak MB':>15} "
          f"{'pandas B/cell':>14}")
    for scale, n_rows, cells, p, d in rows:
        d_s = min(d["times"])
        if p["capped_mb"] is None:
            p_s = min(p["times"])
            text = (f"{p_s:>9.2f} {d_s:>9.2f} {p_s / d_s:>14.2f} {p['peak_mb']:>15.0f} "
                     f"{d['peak_mb']:>15.0f} {p['peak_mb'] * 2**20 / cells:>14.0f}")
        else:
            text = (f"{'stopped':>9} {d_s:>9.2f} {'-':>14} "
                     f"{'>' + format(p['capped_mb'], '.0f'):>15} {d['peak_mb']:>15.0f} "
                     f"{'>' + format(p['capped_mb'] * 2**20 / cells, '.0f'):>14}")
        print(f"{'x' + str(scale):>5} {n_rows:>11,} {text}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
