"""``assistant``: the console script. Every command has ``--help``."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from assistant.core.config import Settings, load_settings
from assistant.core.errors import AssistantError, InputError, unexpected_error

# Each command imports the Tailor modules it runs inside its own function (`# lazy: CLI
# start-up, +cost`): `import assistant.cli` stays ~0.3 s, so `assistant --help`, a typo or
# `assistant config` answer at once; the service alone would add ~3 s. Costs are measured
# over `import assistant.cli` on 2 cores.

app = typer.Typer(help="Tailor: a personalization assistant for online shops (offline by default).",
                  no_args_is_help=True, add_completion=False)
templates_app = typer.Typer(help="Prompt templates in prompts/.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
segments_app = typer.Typer(help="Customer segments from order data.", no_args_is_help=True)
app.add_typer(segments_app, name="segments")
users_app = typer.Typer(help="Staff users (agent, ops, admin) of the desk and studio.",
                        no_args_is_help=True)
app.add_typer(users_app, name="users")
help_app = typer.Typer(help="Help base (Bitext passages in Chroma) and the intent classifier.",
                       no_args_is_help=True)
app.add_typer(help_app, name="help")
recommend_app = typer.Typer(help="Recommenders and their offline evaluation.",
                            no_args_is_help=True)
app.add_typer(recommend_app, name="recommend")
prompts_app = typer.Typer(help="Prompt studio: template versions, labels, tests, export.",
                          no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")

log = logging.getLogger("assistant")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "chromadb", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


ERROR_LOG_NAME = "tailor-errors.log"


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The edge of every command: an AssistantError becomes 'error: ... / hint: ...' on
    stderr and exit code 2; any other exception (a bug) is logged with its traceback to
    ``<data dir>/logs/tailor-errors.log`` (see ``_error_log``) and becomes 'error: ... /
    hint: ...' naming that file, exit code 1. No traceback on the terminal."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AssistantError as err:
            _print_error(err)
            raise typer.Exit(2) from None
        except Exception as exc:  # noqa: BLE001 - the edge: nothing else reaches the user
            if _not_a_bug(exc):
                raise
            command = fn.__name__.replace("_", " ").strip()
            log_file, logger, handler = _error_log()
            try:
                err = unexpected_error(exc, f"running 'assistant {command}'", log=logger,
                                       details_in=str(log_file) if log_file else "stderr")
            finally:
                logger.removeHandler(handler)
                handler.close()
            _print_error(err)
            raise typer.Exit(1) from None

    return run


def _not_a_bug(exc: Exception) -> bool:
    """typer's/click's own ways to stop (exit codes, Ctrl+C, usage errors) and a closed
    pipe (``| head``, which click handles)."""
    return isinstance(exc, BrokenPipeError) or (
        type(exc).__module__.split(".")[0] in ("typer", "click"))


def _print_error(err: AssistantError) -> None:
    typer.secho(f"error: {err.message}", fg="red", err=True)
    if err.hint:
        typer.secho(f"hint: {err.hint}", err=True)


def _error_log() -> tuple[Path | None, logging.Logger, logging.Handler]:
    """(file, logger, handler) for a bug's traceback: ``<data dir>/logs/tailor-errors.log``
    (appended), else the same name in the temp directory when the data dir is unusable,
    else stderr. The logger does not propagate: the terminal gets the short message only."""
    logger = logging.getLogger("assistant.cli.errors")
    logger.propagate = False
    logger.setLevel(logging.ERROR)
    folders = []
    with contextlib.suppress(Exception):  # broken settings must not hide the original error
        folders.append(load_settings().data_dir / "logs")
    folders.append(Path(tempfile.gettempdir()))
    handler: logging.Handler | None = None
    path: Path | None = None
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / ERROR_LOG_NAME
            handler = logging.FileHandler(path, encoding="utf-8")
            break
        except OSError:
            path = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    return path, logger, handler


def _settings(**overrides: Any) -> Settings:
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


RETENTION_EVERY_S = 3600


def _retention_loop(service: Any) -> None:
    """Every hour (and at start): sessions nobody wrote in expire after an hour idle, and
    with TAILOR_RETENTION_DAYS, sessions idle that long are erased."""
    while True:
        try:
            expired = service.expire_sessions()
            if expired:
                log.info("expired %d empty sessions", expired)
            counts = service.apply_retention()
            if counts and counts.get("sessions"):
                log.info("retention: erased %d idle sessions", counts["sessions"])
        except Exception:  # noqa: BLE001 - a failed purge is retried next hour
            log.exception("retention purge failed")
        time.sleep(RETENTION_EVERY_S)


@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (TAILOR_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TAILOR_PORT).")] = None,
) -> None:
    """Start the web app (Chat tab) on the configured model."""
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s
    from assistant.ui import launch  # lazy: gradio, +5 s; only `serve` needs it

    _setup_logging()
    settings = _settings(host=host, port=port)
    service = AssistantService.from_settings(settings)
    log.info("Tailor: %s; data in %s", service.describe(), settings.data_dir)
    service.warm_up()
    if settings.auto_build_segments:
        threading.Thread(target=service.first_run_builds, daemon=True,
                         name="first-run-builds").start()
    threading.Thread(target=_retention_loop, args=(service,), daemon=True,
                     name="retention").start()
    log.info("open http://%s:%s", settings.host, settings.port)
    launch(service)


@app.command()
@friendly
def chat(
    message: Annotated[str, typer.Argument(help="What to say.")],
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
) -> None:
    """Send one chat message, as the chat box does, and stream the reply to stdout (session
    id on stderr): the guided questionnaire first ("Just chat" leaves it), then the model."""
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s

    service = AssistantService.from_settings(_settings())
    sid, _ = service.resume(session)
    for delta in service.respond(sid, message):
        sys.stdout.write(delta)
        sys.stdout.flush()
    sys.stdout.write("\n")
    typer.echo(f"session: {sid}", err=True)


@app.command()
@friendly
def config() -> None:
    """Show the settings in effect (secrets masked) as JSON."""
    typer.echo(json.dumps(_settings().describe(), indent=2, default=str))


@app.command()
@friendly
def calls(limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20) -> None:
    """Show the LLM call log (latency, time to first token, tokens, outcome)."""
    from assistant.infra.store import Store  # lazy: CLI start-up, +12 ms

    rows = Store.from_settings(_settings()).llm_calls(limit)
    typer.echo(json.dumps([r.model_dump() for r in rows], indent=2))


@templates_app.command("list")
@friendly
def templates_list() -> None:
    """List templates with their variables."""
    from assistant.prompts.templates import TemplateRegistry  # lazy: CLI start-up, +0.6 s

    for tpl in TemplateRegistry(_settings().prompts_dir):
        variables = ", ".join(f"{n}:{v.type}{'' if v.required else '?'}"
                              for n, v in tpl.variables.items())
        typer.echo(f"{tpl.name} ({tpl.version}): {tpl.description}\n  variables: {variables}")


@templates_app.command("check")
@friendly
def templates_check() -> None:
    """Validate every template file (exit 2 with file and line on the first problem)."""
    from assistant.prompts.templates import TemplateRegistry  # lazy: CLI start-up, +0.6 s

    reg = TemplateRegistry(_settings().prompts_dir)
    typer.echo(f"{len(reg.templates)} template(s) OK")


class _Bar:
    """tqdm progress bar on stderr driven by (stage, fraction) callbacks."""

    def __init__(self, enabled: bool) -> None:
        self.bar = tqdm(total=100, unit="%", file=sys.stderr, disable=not enabled,
                        bar_format="{l_bar}{bar}| {elapsed}")

    def __call__(self, stage: str, done: float) -> None:
        self.bar.set_description(stage)
        self.bar.update(max(0, round(done * 100) - self.bar.n))

    def close(self) -> None:
        self.bar.close()


def _print_build(summary: dict[str, Any]) -> None:
    clf = summary["classifier"]
    typer.echo(f"customers: {summary['customers']:,}  (rows read {summary['rows_read']:,}, "
               f"used {summary['rows_used']:,}, returns {summary['returns']:,})")
    typer.echo("rejected rows: " + (", ".join(f"{k} {v:,}" for k, v in
                                              summary["rejected"].items()) or "none"))
    if summary.get("engine_reason"):
        typer.echo(f"engine: {summary['engine_reason']}")
    typer.echo("segments: " + ", ".join(f"{k} {v:,}" for k, v in summary["segments"].items()))
    best = next(r for r in summary["clusters"]["scores"] if r["k"] == summary["clusters"]["k"])
    typer.echo(f"clusters: k={summary['clusters']['k']} (silhouette {best['silhouette']:.3f}, "
               f"Davies-Bouldin {best['davies_bouldin']:.3f}): "
               + "; ".join(summary["clusters"]["names"]))
    typer.echo(f"classifier ({clf['folds']}-fold CV over held-out customers; majority baseline "
               f"{clf['baseline_accuracy']:.3f}):")
    for mode, m in clf["by_mode"].items():
        typer.echo(f"  {mode:<10} accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
                   f"Brier {m['brier']:.3f}")
    typer.echo(f"saved: {summary['artifacts']}")


@segments_app.command("build")
@friendly
def segments_build(
    orders: Annotated[Path, typer.Option(help="Orders file: CSV, CSV.gz or Parquet.")],
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="FIELD=COLUMN for a different schema (repeatable).")] = None,
    reference_date: Annotated[str | None, typer.Option(
        help="Recency and tenure are counted to this day (YYYY-MM-DD; default: the day "
             "after the last order).")] = None,
    return_prefix: Annotated[str, typer.Option(
        help="Order ids starting with this are returns ('' to rely on negative quantities).")
    ] = "C",
    engine: Annotated[str, typer.Option(
        help="What reads the orders and computes the features: pandas, duckdb (out of core, "
             "for files larger than memory allows pandas comfortably; same features) or auto "
             "(by the file's size and the memory available).")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ingest orders, compute features, discover segments, train the segment classifier.
    Rejected rows are written to <data dir>/artifacts/last-rejects.csv with their reason."""
    from assistant.orders.ingest import parse_map_options  # lazy: CLI start-up, +0.4 s
    from assistant.segments.model import build_segment_model  # lazy: CLI start-up, +1.5 s

    settings = _settings()
    bar = _Bar(enabled=not as_json and sys.stderr.isatty())
    try:
        summary = build_segment_model(orders, settings.artifacts_dir,
                                      mapping=parse_map_options(map_),
                                      return_prefix=return_prefix,
                                      reference_date=reference_date, progress=bar,
                                      engine=engine)
    finally:
        bar.close()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_build(summary)


@segments_app.command("train")
@friendly
def segments_train(
    table: Annotated[Path, typer.Option(help="A table (CSV or Parquet), one row per person.")],
    label: Annotated[str, typer.Option(help="The column to predict.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Cross-validate a few classifiers on any table (logistic regression at three
    strengths, gradient boosting, a random forest); the best macro-F1 wins; compare with the
    majority baseline."""
    from assistant.orders.tables import read_table  # lazy: CLI start-up, +0.4 s
    from assistant.segments.model import train_table  # lazy: CLI start-up, +1.5 s

    result = train_table(read_table(table), label)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['rows']:,} rows, {len(result['classes'])} classes, "
               f"{result['folds']}-fold CV")
    for name, sc in result["candidates"].items():
        mark = "  <- chosen" if name == result["model"] else ""
        typer.echo(f"  {name:<18} accuracy {sc['accuracy']:.3f}  macro-F1 "
                   f"{sc['macro_f1']:.3f}{mark}")
    typer.echo(f"majority baseline: accuracy {result['baseline']['accuracy']:.3f}, "
               f"macro-F1 {result['baseline']['macro_f1']:.3f}")


@segments_app.command("show")
@friendly
def segments_show(
    customer: Annotated[str, typer.Argument(help="Customer id from the order data.")],
) -> None:
    """Segment of a known customer, with probability and reasons, as JSON."""
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s

    service = AssistantService.from_settings(_settings())
    # the shell user runs the CLI with the data files at hand: no staff role to check
    typer.echo(json.dumps(service.segment_model().of_customer(customer), indent=2))


# --------------------------------------------------------------------------- insights
insights_app = typer.Typer(help="Outcomes from the shop's orders: retention, churn, value, "
                                "segment migration.", no_args_is_help=True)
app.add_typer(insights_app, name="insights")
OrdersOption = Annotated[Path | None, typer.Option(
    "--orders", help="Orders file (default TAILOR_ORDERS, else the shipped data).")]
SinceOption = Annotated[str | None, typer.Option(help="Count orders from this day (YYYY-MM-DD).")]
SegmentOption = Annotated[str | None, typer.Option(help="Only this segment (e.g. Champions).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]


def _insights(orders: Path | None) -> Any:
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s

    # the shell user runs the CLI with the data files at hand: no staff role to check
    return AssistantService.from_settings(_settings(orders=orders)).insights


def _pct(rate: dict[str, Any]) -> str:
    if rate["rate"] is None:
        return "-"
    return (f"{100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}-{100 * rate['high']:.1f}] "
            f"n={rate['n']:,}")


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    kind = report["report"]
    if kind == "retention":
        typer.echo(f"cohort retention by period ({report['period']}); "
                   f"rate [95% interval] of the cohort's customers")
        cohorts: dict[str, list[dict[str, Any]]] = {}
        for row in report["cohorts"]:
            cohorts.setdefault(row["cohort"], []).append(row)
        for cohort, rows in cohorts.items():
            rates = " ".join(f"{100 * r['rate']:3.0f}%" for r in rows[1:13])
            typer.echo(f"{cohort}  n={rows[0]['size']:>5,}  {rates}")
    elif kind == "segments":
        typer.echo(f"{'segment':<22}{'customers':>10}  {'repeat':<30}{'churn':<30}"
                   f"{'at risk':>8}{'revenue':>14}{'avg order':>11}")
        for r in report["segments"]:
            aov = r["aov"]["mean"]
            typer.echo(f"{r['segment']:<22}{r['customers']:>10,}  {_pct(r['repeat']):<30}"
                       f"{_pct(r['churn']):<30}{r['at_risk']['count']:>8,}"
                       f"{r['revenue']:>14,.0f}{'-' if aov is None else f'{aov:,.2f}':>11}")
    elif kind == "migration":
        typer.echo(f"segment on {report['from']} -> segment on {report['to']}")
        for m in report["moves"]:
            typer.echo(f"{m['from']:<22} -> {m['to']:<22}{m['customers']:>7,}  "
                       f"{100 * m['share']:5.1f}%")
    elif kind == "funnel":
        typer.echo(f"{' / '.join(report['by'])}: shown -> engaged (CTR) -> bought within "
                   f"{report['window_days']} days (conversion of those shown to linked "
                   "customers)")
        for r in report["rows"]:
            name = " / ".join(str(r[g]) for g in report["by"])
            typer.echo(f"{name:<34}{r['shown']:>7,} shown  CTR {_pct(r['ctr']):<30}"
                       f"conversion {_pct(r['conversion'])}")
    elif kind == "value":
        typer.echo(f"next {report['horizon_days']:.0f} days, predicted (BG/NBD + Gamma-Gamma)")
        for r in report["segments"]:
            typer.echo(f"{r['segment']:<22}{r['customers']:>7,} customers  "
                       f"{r['expected_purchases']:>9,.0f} purchase days  "
                       f"£{r['expected_value']:>12,.0f}"
                       f"  churn risk {_mean(r['churn_risk'])}")
        check = report.get("validation") or {}
        if "purchases" in check:
            typer.echo(f"error on the last {check['horizon_days']} days "
                       f"(model / carrying the last period forward): purchase days MAE "
                       f"{check['purchases']['ratio']['mae']:.3f}, revenue MAE "
                       f"{check['revenue']['ratio']['mae']:.3f}")
        elif check:
            typer.echo(f"not validated: {check['error']}")
    elif kind == "satisfaction":
        typer.echo("chat ratings (1-5): mean [95% interval] n")
        for r in report["by_segment"]:
            typer.echo(f"{r['segment']:<22}{_mean(r)}")
        for r in report["drafts"]:
            typer.echo(f"drafts {r['period']}: {r['drafts']} written, liked "
                       f"{_pct(r['liked'])}, sent as written {_pct(r['sent_as_written'])}, "
                       f"resolved {_pct(r['resolved'])}")
    if report.get("note"):
        typer.echo(report["note"])


def _mean(m: dict[str, Any]) -> str:
    if m["mean"] is None:
        return "-"
    if m["low"] is None:
        return f"{m['mean']:.2f} n={m['n']}"
    return f"{m['mean']:.2f} [{m['low']:.2f}-{m['high']:.2f}] n={m['n']:,}"


@insights_app.command("retention")
@friendly
def insights_retention(
    period: Annotated[str, typer.Option(help="M (months), Q (quarters) or W (weeks).")] = "M",
    segment: SegmentOption = None, since: SinceOption = None, orders: OrdersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cohort retention: of the customers whose first order fell in a period, the share
    buying k periods later (a Wilson interval and the cohort size with every rate)."""
    _print_report(_insights(orders).retention(period=period, segment=segment, since=since),
                  as_json)


@insights_app.command("segments")
@friendly
def insights_segments(
    segment: SegmentOption = None, since: SinceOption = None,
    as_of: Annotated[str | None, typer.Option(
        help="Measure as of this day (default: the day after the last order).")] = None,
    churn_days: Annotated[int, typer.Option(min=1, help="The churn window in days.")] = 90,
    orders: OrdersOption = None, as_json: JsonOption = False,
) -> None:
    """Per segment: repeat-purchase rate, churn rate, customers at risk, revenue and
    average order value, with counts and 95 % intervals."""
    _print_report(_insights(orders).outcomes(segment=segment, since=since, as_of=as_of,
                                             churn_days=churn_days), as_json)


@insights_app.command("funnel")
@friendly
def insights_funnel(
    by: Annotated[str, typer.Option(help="variant, segment, or variant,segment.")] = "variant",
    segment: SegmentOption = None, since: SinceOption = None,
    window_days: Annotated[int, typer.Option(
        min=1, help="Days after a card was shown in which an order of it counts.")] = 30,
    orders: OrdersOption = None, as_json: JsonOption = False,
) -> None:
    """Recommendations shown -> engaged with -> bought, per variant and/or segment."""
    _print_report(_insights(orders).funnel(by=by, segment=segment, since=since,
                                           window_days=window_days), as_json)


@insights_app.command("satisfaction")
@friendly
def insights_satisfaction(
    segment: SegmentOption = None, since: SinceOption = None,
    period: Annotated[str, typer.Option(help="Trend per W (week) or M (month).")] = "W",
    orders: OrdersOption = None, as_json: JsonOption = False,
) -> None:
    """Chat ratings (1-5) per segment and over time; agents' ratings of desk drafts."""
    _print_report(_insights(orders).satisfaction(segment=segment, since=since,
                                                 period=period), as_json)


@insights_app.command("value")
@friendly
def insights_value(
    segment: SegmentOption = None,
    top: Annotated[int, typer.Option(min=0, help="How many of the most valuable customers "
                                     "to list.")] = 20,
    orders: OrdersOption = None, as_json: JsonOption = False,
) -> None:
    """Predicted purchases, value and churn risk over the next 90 days per segment (BG/NBD
    + Gamma-Gamma), and the model's error on the last 90 days beside a naive baseline."""
    _print_report(_insights(orders).value(segment=segment, top=top), as_json)


@insights_app.command("simulate")
@friendly
def insights_simulate(
    sessions: Annotated[int, typer.Option(help="Simulated sessions to write.")] = 1000,
    start: Annotated[str | None, typer.Option(help="The cut: a recommender is fitted on the "
                                              "orders before it (default: 90 days before "
                                              "the last order).")] = None,
    days: Annotated[int, typer.Option(help="Sessions fall in the days after the cut.")] = 60,
    k: Annotated[int, typer.Option(help="Cards shown per session.")] = 5,
    engage: Annotated[float, typer.Option(help="Chance that a card the customer really "
                                          "ordered later gets 'more like this'.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    policy: Annotated[bool, typer.Option(
        "--policy", help="Simulate desk exposures for the running policy experiment "
        "instead (an A/A check: real customers of its segment, their real later "
        "orders).")] = False,
    customers: Annotated[int, typer.Option(help="--policy: customers to expose.")] = 1000,
    orders: OrdersOption = None, as_json: JsonOption = False,
) -> None:
    """Simulated traffic from real customers (marked SIMULATED in the event log): cards from
    the running experiment's arms or the served hybrid, credited by real later orders."""
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s

    service = AssistantService.from_settings(_settings(orders=orders))
    bar = _Bar(enabled=not as_json and sys.stderr.isatty())
    try:
        out = (service.simulation.exposures(customers=customers, start=start, days=days,
                                            seed=seed, progress=bar) if policy else
               service.simulation.run(sessions=sessions, start=start, days=days, k=k,
                                      engage=engage, seed=seed, progress=bar))
    finally:
        bar.close()
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    if policy:
        typer.echo(f"run {out['run']}: {out['customers']:,} of the {out['in_segment']:,} "
                   f"customers in {out['segment']} on {out['start']} exposed over "
                   f"{out['days']} days; "
                   + ", ".join(f"{v} {n:,}" for v, n in out["variants"].items()))
        typer.echo(out["note"])
        return
    typer.echo(f"run {out['run']}: {out['sessions']:,} sessions from {out['start']} over "
               f"{out['days']} days, {out['cards_shown']:,} cards shown, {out['engaged']:,} "
               "engaged; " + ", ".join(f"{v} {n:,}" for v, n in out["variants"].items()))
    typer.echo(out["note"])


@insights_app.command("migration")
@friendly
def insights_migration(
    start: Annotated[str | None, typer.Option("--from", help="First day (YYYY-MM-DD; default "
                                              "six months before --to).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Second day (default: the day after "
                                            "the last order).")] = None,
    orders: OrdersOption = None, as_json: JsonOption = False,
) -> None:
    """How customers moved between RFM segments from one day to another."""
    _print_report(_insights(orders).migration(start, end), as_json)


# --------------------------------------------------------------------------- experiments
experiments_app = typer.Typer(help="Experiments between recommender variants or support "
                                   "policies: sample size, start, status, stop.",
                              no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")


def _experiments() -> Any:
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s

    return AssistantService.from_settings(_settings()).experiments


def _shell_user() -> str:
    return f"cli:{_actor(None)}"


def _print_experiment(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(status, indent=2, default=str))
        return
    exp, verdict, unit = status["experiment"], status["verdict"], status["unit"]
    on = f" on {exp['segment']}" if exp.get("segment") else ""
    typer.echo(f"{exp['name']} ({exp['status']}, {exp['kind']}{on}, since "
               f"{exp['started_at'][:16]}; primary metric {exp['metric']}; "
               f"{verdict['planned_per_arm']:,} {unit} per arm planned)")
    for arm in status["arms"]:
        rates = (f"CTR {_pct(arm['ctr'])}" if "ctr" in arm else f"sent {_pct(arm['sent'])}")
        typer.echo(f"  {arm['arm']:<6} {arm['spec']:<32} {arm[unit]:>6,} {unit}  "
                   f"{rates}  conversion {_pct(arm['conversion'])}")
    for c in verdict["comparisons"]:
        p = "-" if c["p_adjusted"] is None else f"{c['p_adjusted']:.3g}"
        diff = "-" if c["difference"] is None else f"{c['difference']:+.4g}"
        typer.echo(f"  {c['metric']:<40} difference {diff:>9}  Holm p {p}")
    typer.echo(f"{verdict['state']}: {verdict['note']}")
    if status.get("capacity_note"):
        typer.echo(f"too small: {status['capacity_note']}")


ArmOption = Annotated[list[str], typer.Option(
    "--arm", help="NAME=SPEC; the first arm is the control. Recommender: e.g. A=served and "
    "B=served,segment=0.5 (served weights, without:NAME, NAME=WEIGHT). Policy: A=served (the "
    "segment's policy) and B=VARIANT (a variant in data/policies.yaml).")]


@experiments_app.command("size")
@friendly
def experiments_size(
    base_rate: Annotated[float, typer.Option(help="Today's rate, e.g. 0.08.")],
    mde: Annotated[float, typer.Option(help="Smallest change worth knowing, e.g. 0.02.")],
    alpha: Annotated[float, typer.Option(help="False-positive rate.")] = 0.05,
    power: Annotated[float, typer.Option(help="Chance to see a real change.")] = 0.8,
) -> None:
    """Sessions per arm needed to see a change of MDE from BASE-RATE (before starting)."""
    from assistant.insights.experiments import sample_size  # lazy: CLI start-up

    n = sample_size(base_rate, mde, alpha=alpha, power=power)
    typer.echo(f"{n:,} sessions per arm to detect {base_rate:g} -> {base_rate + mde:g} "
               f"(alpha {alpha:g}, power {power:g})")


@experiments_app.command("start")
@friendly
def experiments_start(
    name: Annotated[str, typer.Argument(help="A new name, e.g. segment-boost.")],
    arm: ArmOption,
    base_rate: Annotated[float, typer.Option(help="Today's rate of the metric.")],
    mde: Annotated[float, typer.Option(help="Smallest change worth knowing.")],
    metric: Annotated[str | None, typer.Option(
        help="Recommender: ctr (default) or conversion. Policy: conversion (default) or "
             "sent.")] = None,
    share: Annotated[float, typer.Option(help="Share of sessions (customers) in it "
                                         "(0-1].")] = 1.0,
    kind: Annotated[str, typer.Option(help="recommender (hybrid weights) or policy (a "
                                      "segment's support policy).")] = "recommender",
    segment: Annotated[str | None, typer.Option(help="Policy experiments: the segment, e.g. "
                                                "'At Risk'.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Start an experiment between recommender variants or support policies (one of each
    kind runs at a time)."""
    arms = {}
    for item in arm:
        label, sep, spec = item.partition("=")
        if not sep or not label.strip() or not spec.strip():
            raise InputError(f"--arm {item!r} is not of the form NAME=SPEC.",
                             "Write e.g. --arm A=served --arm B=served,segment=0.5.")
        arms[label.strip()] = spec.strip()
    _print_experiment(_experiments().start(_shell_user(), name, arms, metric=metric,
                                           base_rate=base_rate, mde=mde, share=share,
                                           kind=kind, segment=segment),
                      as_json)


@experiments_app.command("status")
@friendly
def experiments_status(
    name: Annotated[str | None, typer.Argument(help="Default: the running one.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Traffic per arm, the metrics with intervals, corrected p-values and the verdict."""
    _print_experiment(_experiments().status(name), as_json)


@experiments_app.command("stop")
@friendly
def experiments_stop(
    name: Annotated[str, typer.Argument(help="The experiment to stop.")],
    reason: Annotated[str, typer.Option(help="Why (kept with it).")] = "",
    as_json: JsonOption = False,
) -> None:
    """Stop an experiment: every session gets the served weights again; results stay."""
    _print_experiment(_experiments().stop(_shell_user(), name, reason), as_json)


# --------------------------------------------------------------------------- users
def _user_store() -> Any:
    from assistant.infra.users import UserStore  # lazy: CLI start-up, +7 ms

    return UserStore.from_settings(_settings())


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


privacy_app = typer.Typer(help="Personal data: export, erase, retention (audited).",
                          no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")


def _privacy_target(session: str | None, customer: str | None) -> tuple[str, str]:
    if bool(session) == bool(customer):
        raise InputError("Give exactly one of --session and --customer.",
                         "For example: assistant privacy export --customer 17850")
    return ("session", session) if session else ("customer", customer)  # type: ignore[return-value]


@privacy_app.command("export")
@friendly
def privacy_export(
    session: Annotated[str | None, typer.Option(help="A chat session id.")] = None,
    customer: Annotated[str | None, typer.Option(help="A customer number.")] = None,
    actor: Annotated[str, typer.Option(help="Who asks (written to the audit log).")] = "cli",
) -> None:
    """Print everything stored for a session or a customer, as JSON (audited)."""
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s

    kind, value = _privacy_target(session, customer)
    privacy = AssistantService.from_settings(_settings()).privacy
    data = (privacy.export_session(value, actor=actor) if kind == "session"
            else privacy.export_customer(value, actor=actor))
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@privacy_app.command("erase")
@friendly
def privacy_erase(
    session: Annotated[str | None, typer.Option(help="A chat session id.")] = None,
    customer: Annotated[str | None, typer.Option(help="A customer number.")] = None,
    actor: Annotated[str, typer.Option(help="Who asks (written to the audit log).")] = "cli",
) -> None:
    """Erase a session's data, or everything about a customer (their sessions and the desk
    drafts about them), from SQLite and Chroma (audited)."""
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s

    kind, value = _privacy_target(session, customer)
    privacy = AssistantService.from_settings(_settings()).privacy
    counts = (privacy.erase_session(value, actor=actor) if kind == "session"
              else privacy.erase_customer(value, actor=actor))
    typer.echo("erased: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@privacy_app.command("purge")
@friendly
def privacy_purge(
    older_than: Annotated[float, typer.Option("--older-than",
                                              help="Days since a session was last used.")],
) -> None:
    """Erase every chat session idle for more than --older-than days (what
    TAILOR_RETENTION_DAYS does in the running app every hour)."""
    from assistant.service.assistant import AssistantService  # lazy: CLI start-up, +3 s

    counts = AssistantService.from_settings(_settings()).privacy.purge(older_than,
                                                                       actor="cli")
    typer.echo("erased: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@users_app.command("add")
@friendly
def users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option(help="agent, ops or admin.")] = "agent",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
) -> None:
    """Add a user; the password is asked twice (hidden) unless --password-stdin."""
    from assistant.infra.users import check_role, normalize_name  # lazy: CLI start-up, +7 ms

    normalize_name(name)
    check_role(role)  # refuse bad input before asking for a password
    user = _user_store().add(name, _read_password(password_stdin), role)
    typer.echo(f"added {user.name} ({user.role})")


@users_app.command("list")
@friendly
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List users with their roles (never their password hashes)."""
    users = _user_store().list()
    if as_json:
        typer.echo(json.dumps([u.public() for u in users], indent=2))
        return
    if not users:
        typer.echo("no users yet: assistant users add NAME --role agent")
    for user in users:
        typer.echo(f"{user.name:<24} {user.role:<6} added {user.created_at}")


@users_app.command("remove")
@friendly
def users_remove(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Remove a user."""
    user = _user_store().remove(name)
    typer.echo(f"removed {user.name}")


@users_app.command("passwd")
@friendly
def users_passwd(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
) -> None:
    """Set a user's password."""
    from assistant.infra.users import normalize_name  # lazy: CLI start-up, +7 ms

    store = _user_store()
    if store.get(normalize_name(name)) is None:  # refuse before asking for a password
        raise InputError(f"No user named '{normalize_name(name)}'.",
                         "See the names with: assistant users list")
    user = store.set_password(name, _read_password(password_stdin))
    typer.echo(f"password changed for {user.name}")


# --------------------------------------------------------------------------- help base
@help_app.command("build")
@friendly
def help_build(
    data: Annotated[Path | None, typer.Option(help="Bitext CSV (default: the shipped copy).")
                    ] = None,
    shop: Annotated[Path | None, typer.Option(help="Shop settings (default: data/shop.yaml).")
                    ] = None,
    per_intent: Annotated[int, typer.Option(min=1, max=500, help="Passages kept per intent.")
                          ] = 20,
    force: Annotated[bool, typer.Option(help="Rebuild even when nothing changed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Fill the Bitext responses from data/shop.yaml and index them in Chroma.

    Skipped when the data, the shop file and the options are unchanged."""
    from assistant.support.helpbase import HelpBase, build_helpbase  # lazy: CLI start-up, +0.4 s

    base = HelpBase.from_settings(_settings())
    bar = _Bar(enabled=not as_json and sys.stderr.isatty())
    try:
        summary = build_helpbase(base, csv_path=data, shop_path=shop, per_intent=per_intent,
                                 force=force, progress=bar)
    finally:
        bar.close()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    elif summary["skipped"]:
        typer.echo(f"help base up to date ({summary['passages']} passages, build "
                   f"{summary['build']})")
    else:
        left = ", ".join(f"{k} {v}" for k, v in summary["left_out"].items()) or "none"
        typer.echo(f"{summary['passages']} passages for {summary['intents']} intents from "
                   f"{summary['rows']:,} responses (left out: {left}); build {summary['build']}")


@help_app.command("search")
@friendly
def help_search(
    text: Annotated[str, typer.Argument(help="A ticket or question.")],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="How many passages.")] = 5,
    intent: Annotated[str | None, typer.Option(help="Only passages of this intent.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The help passages nearest a text."""
    from assistant.support.helpbase import HelpBase  # lazy: CLI start-up, +0.4 s

    hits = HelpBase.from_settings(_settings()).search(text, k, intent)
    if as_json:
        typer.echo(json.dumps([asdict(p) for p in hits], indent=2))
        return
    for n, p in enumerate(hits, start=1):
        typer.echo(f"[{n}] {p.score:.3f} {p.intent} ({p.category}) {p.id}\n"
                   f"    {p.text[:200].replace(chr(10), ' ')}...")


@help_app.command("train")
@friendly
def help_train(
    data: Annotated[Path | None, typer.Option(help="Bitext CSV (default: the shipped copy).")
                    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Train the intent classifier and the chat's message router; print held-out scores."""
    from assistant.support.intents import train_intents  # lazy: CLI start-up, +1.5 s
    from assistant.support.routing import train_routes  # lazy: CLI start-up

    summary = train_intents(_settings().artifacts_dir, data)
    routes = train_routes(_settings().artifacts_dir, bitext=data)
    if as_json:
        typer.echo(json.dumps({**summary, "routes": routes}, indent=2))
        return
    held = summary["held_out"]
    typer.echo(f"{summary['rows']:,} instructions, {summary['intents']} intents; held-out "
               f"({held['test_rows']} rows): accuracy {held['accuracy']:.4f}  macro-F1 "
               f"{held['macro_f1']:.4f}")
    worst = sorted(held["per_intent"].items(), key=lambda kv: kv[1]["f1"])[:3]
    typer.echo("lowest F1: " + ", ".join(f"{k} {v['f1']:.3f}" for k, v in worst))
    typer.echo(f"saved: {summary['artifacts']}")
    rh = routes["held_out"]
    typer.echo(f"router (support | shopping | chat), {routes['rows']:,} messages; held-out "
               f"({rh['test_rows']} rows): accuracy {rh['accuracy']:.4f}  macro-F1 "
               f"{rh['macro_f1']:.4f}")
    typer.echo(f"saved: {routes['artifacts']}")


@help_app.command("classify")
@friendly
def help_classify(text: Annotated[str, typer.Argument(help="A ticket.")]) -> None:
    """Intent of a ticket with its confidence and the top 3, as JSON."""
    from assistant.support.intents import IntentClassifier  # lazy: CLI start-up, +1.5 s

    pred = IntentClassifier.load(_settings().artifacts_dir).predict(text)
    typer.echo(json.dumps(pred._asdict(), indent=2))



# options shared by `recommend evaluate` and `recommend tune`
InteractionMap = Annotated[list[str] | None, typer.Option(
    "--map", help="FIELD=COLUMN for user, item, time, rating, description (repeatable).")]
ListLength = Annotated[int, typer.Option("--k", min=1, help="Length of each list.")]


@recommend_app.command("evaluate")
@friendly
def recommend_evaluate(
    interactions: Annotated[Path, typer.Option(
        help="User-item file: orders or ratings/events (CSV, CSV.gz or Parquet).")],
    map_: InteractionMap = None,
    split: Annotated[str, typer.Option(help="chronological or random-per-user.")
                     ] = "chronological",
    split_date: Annotated[str | None, typer.Option(
        help="chronological: train before this day, test from it (YYYY-MM-DD; default: "
             "the day that leaves the last quarter of the interactions for the test).")
    ] = None,
    test_fraction: Annotated[float, typer.Option(
        help="random-per-user: share of each user's items held out.")] = 0.25,
    k: ListLength = 10,
    exclude_seen: Annotated[bool | None, typer.Option(
        "--exclude-seen/--include-seen",
        help="Only items new to the user, or already-bought ones allowed (default: both).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random split and survey noise.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    diversity: Annotated[str, typer.Option(
        help="MMR levels to report beside the hybrid, e.g. 0.1,0.3 (0-1: the weight of "
             "difference; the served one is TAILOR_DIVERSITY).")] = "",
    without: Annotated[list[str] | None, typer.Option(
        help="Leave this recommender out of the hybrid and the tables (repeatable), e.g. "
             "--without segment: does it help?")] = None,
) -> None:
    """Every recommender side by side (precision, recall, F1, NDCG, MAP, hit rate @k,
    catalog coverage, novelty, intra-list diversity), plus the cold start; the hybrid's
    weights are tuned on a validation split inside the training data. JSON:
    {"recommenders": {name: {metric: value}} (repeats allowed), "recommenders_new_items":
    {...} (already-bought excluded), "cold_start": {...}}."""
    from assistant.orders.ingest import parse_map_options  # lazy: CLI start-up, +0.4 s
    from assistant.recommend.evaluation import (  # lazy: CLI start-up, +1.5 s
        evaluate,
        format_report,
    )
    from assistant.recommend.interactions import load_interactions  # lazy: CLI start-up

    settings = _settings()
    bar = _Bar(enabled=not as_json and sys.stderr.isatty())
    try:
        bar("reading interactions", 0.0)
        data = load_interactions(interactions, parse_map_options(map_))
        settings_seen = (False, True) if exclude_seen is None else (exclude_seen,)
        levels = _levels(diversity)
        report = evaluate(data, split=split, split_date=split_date,
                          test_fraction=test_fraction, k=k, exclude_seen=settings_seen,
                          seed=seed, cache_dir=settings.data_dir / "cache", progress=bar,
                          diversity=levels, without=without or ())
    finally:
        bar.close()
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))



@recommend_app.command("tune")
@friendly
def recommend_tune(
    orders: Annotated[Path, typer.Option(
        help="The shop's orders or interactions (CSV, CSV.gz or Parquet).")],
    map_: InteractionMap = None,
    k: ListLength = 10,
    seed: Annotated[int, typer.Option(help="Seed of samples and splits.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Tune the hybrid's weights (and the ALS size) on this shop's own data and save them as
    a versioned artefact the app serves for this file (its SHA-256 must match
    TAILOR_ORDERS'); the Segments tab shows which weights are served."""
    from assistant.orders.ingest import parse_map_options  # lazy: CLI start-up
    from assistant.recommend import tuning  # lazy: CLI start-up, +1.5 s
    from assistant.recommend.interactions import load_interactions  # lazy: CLI start-up

    settings = _settings()
    bar = _Bar(enabled=not as_json and sys.stderr.isatty())
    try:
        bar("reading interactions", 0.0)
        data = load_interactions(orders, parse_map_options(map_))
        manifest = tuning.tune(data, k=k, seed=seed, cache_dir=settings.data_dir / "cache",
                               progress=bar)
        path = tuning.save(settings.artifacts_dir, manifest)
    finally:
        bar.close()
    if as_json:
        typer.echo(json.dumps(tuning.load(settings.artifacts_dir), indent=2, default=str))
        return
    typer.echo(f"tuned on {manifest['data']['source']} ({manifest['data']['interactions']:,} "
               f"interactions), validation split {manifest['split']}")
    for mode, weights in manifest["weights"].items():
        shown = ", ".join(f"{n} {w:g}" for n, w in weights.items() if w)
        val = manifest["validation"].get(mode)
        score = f" (validation {manifest['metric']} {val:.3f})" if val is not None else ""
        typer.echo(f"  {mode}: {shown}{score}")
    if manifest["params"]:
        typer.echo(f"  parameters: {manifest['params']}")
    typer.echo(f"saved to {path}; the app serves it for this file from its next start "
               "(or the next segments rebuild)")


def _levels(text: str) -> list[float]:
    try:
        levels = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--diversity {text!r} is not a list of numbers.",
                         "Pass e.g. --diversity 0.1,0.3") from None
    if any(not 0 <= x <= 1 for x in levels):
        raise InputError(f"--diversity {text!r}: each level must be between 0 and 1.",
                         "Pass e.g. --diversity 0.1,0.3") from None
    return levels


# --------------------------------------------------------------------------- prompt studio
AsOption = Annotated[str | None, typer.Option(
    "--as", help="Author / actor recorded in the history (default: the OS user).")]


def _prompt_versions() -> Any:
    """The studio over the configured database; shipped templates are seeded on first use."""
    from assistant.prompts.versions import PromptVersions  # lazy: CLI start-up, +0.7 s

    return PromptVersions.from_settings(_settings())


def _actor(name: str | None) -> str:
    from assistant.prompts.versions import default_actor  # lazy: CLI start-up, +0.7 s

    return name or default_actor()


@prompts_app.command("list")
@friendly
def prompts_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Templates with description, variables, labels, latest version and last change."""
    rows = _prompt_versions().list()
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    for r in rows:
        labels = " ".join(f"{k}=v{v}" for k, v in sorted(r.labels.items())) or "no labels"
        typer.echo(f"{r.name}  latest v{r.latest_version}  {labels}  "
                   f"(last change {r.last_change} by {r.last_author})")
        typer.echo(f"  {r.description[:110]}")
        typer.echo("  variables: " + ", ".join(
            f"{n}:{v['type']}{'' if v['required'] else '?'}" for n, v in r.variables.items()))


@prompts_app.command("show")
@friendly
def prompts_show(
    name: Annotated[str, typer.Argument(help="Template name.")],
    version: Annotated[int | None, typer.Option(min=1, help="A version number.")] = None,
    label: Annotated[str | None, typer.Option(help="A label (production, staging, ...).")
                     ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """A version's body on stdout (latest unless --version or --label); details on stderr."""
    v = _prompt_versions().get(name, version, label)
    if as_json:
        typer.echo(json.dumps(v.as_dict(), indent=2))
        return
    labels = f" [{', '.join(v.labels)}]" if v.labels else ""
    typer.echo(f"# {v.name} v{v.version}{labels} by {v.author} at {v.created_at}: {v.note}",
               err=True)
    for p in v.problems:
        typer.echo(f"# {p.level}: {p.where()}: {p.message}", err=True)
    typer.echo(v.body, nl=not v.body.endswith("\n"))


@prompts_app.command("history")
@friendly
def prompts_history(
    name: Annotated[str, typer.Argument(help="Template name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Versions (newest first) and the audit log of label moves."""
    studio = _prompt_versions()
    versions, events = studio.history(name), studio.label_history(name)
    if as_json:
        typer.echo(json.dumps({"versions": [v.as_dict(body=False) for v in versions],
                               "label_events": [asdict(e) for e in events]}, indent=2))
        return
    typer.echo("versions:")
    for v in reversed(versions):
        labels = f"  [{', '.join(v.labels)}]" if v.labels else ""
        typer.echo(f"  v{v.version}  {v.created_at}  {v.author}: {v.note}{labels}")
    typer.echo("label moves:")
    for e in events:
        typer.echo(f"  {e.describe()}")


@prompts_app.command("diff")
@friendly
def prompts_diff(
    name: Annotated[str, typer.Argument(help="Template name.")],
    a: Annotated[int, typer.Argument(help="Older version.")],
    b: Annotated[int, typer.Argument(help="Newer version.")],
) -> None:
    """Unified diff of two versions (messages, variables and parameters)."""
    text = _prompt_versions().diff(name, a, b)
    typer.echo(text or f"versions {a} and {b} are identical", nl=not text)


def _read_text(file: Path) -> str:
    """A file the user named; unreadable -> a clear error, not a traceback."""
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Cannot read {file}: {exc.strerror}.", "Check the path.") from None


@prompts_app.command("save")
@friendly
def prompts_save(
    name: Annotated[str, typer.Argument(help="Template name.")],
    file: Annotated[Path, typer.Option("--file", help="The new body (YAML or JSON).")],
    base: Annotated[int, typer.Option(min=0, help="The version your edit started from.")],
    note: Annotated[str, typer.Option(help="What changed and why (required).")],
    as_: AsOption = None,
) -> None:
    """Save a new version; refused with a diff when someone saved since --base."""
    from assistant.prompts.records import ConflictError  # lazy: CLI start-up, +0.7 s

    body = _read_text(file)
    try:
        v = _prompt_versions().save(name, body, author=_actor(as_), note=note,
                                    base_version=base)
    except ConflictError as err:
        typer.echo(err.diff, err=True, nl=False)
        raise
    typer.echo(f"saved {v.name} v{v.version}")


@prompts_app.command("label")
@friendly
def prompts_label(
    name: Annotated[str, typer.Argument(help="Template name.")],
    version: Annotated[int, typer.Argument(help="Version to point the label at.")],
    label: Annotated[str, typer.Argument(help="Label: production, staging, or any name.")],
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")] = "",
    override: Annotated[bool, typer.Option(
        help="Promote to production although its tests do not pass (needs --reason).")
    ] = False,
    share: Annotated[float, typer.Option(
        min=0, max=1, help="Staged rollout: share of sessions served this label.")] = 1.0,
    segment: Annotated[str | None, typer.Option(help="Staged rollout: only this segment.")
                       ] = None,
    as_: AsOption = None,
) -> None:
    """Point a label at a version (promotion to production needs passing tests)."""
    event = _prompt_versions().set_label(name, label, version, actor=_actor(as_),
                                         reason=reason, override=override, share=share,
                                         segment=segment)
    typer.echo(event.describe() if event else f"{label} already points at v{version}")


@prompts_app.command("unlabel")
@friendly
def prompts_unlabel(
    name: Annotated[str, typer.Argument(help="Template name.")],
    label: Annotated[str, typer.Argument(help="Label to remove (not production).")],
    reason: Annotated[str, typer.Option(help="Why (goes into the audit log).")] = "",
    as_: AsOption = None,
) -> None:
    """Remove a label (e.g. end a staging rollout)."""
    event = _prompt_versions().remove_label(name, label, actor=_actor(as_), reason=reason)
    typer.echo(event.describe())


@prompts_app.command("rollback")
@friendly
def prompts_rollback(
    name: Annotated[str, typer.Argument(help="Template name.")],
    reason: Annotated[str, typer.Option(help="Why (required; goes into the audit log).")],
    label: Annotated[str, typer.Option(help="The label to move back.")] = "production",
    as_: AsOption = None,
) -> None:
    """Move production back to the version it pointed at before its last move."""
    event = _prompt_versions().rollback(name, actor=_actor(as_), reason=reason, label=label)
    typer.echo(event.describe())


@prompts_app.command("metrics")
@friendly
def prompts_metrics(
    name: Annotated[str, typer.Argument(help="Template name.")],
    compare_with: Annotated[str | None, typer.Option(
        "--compare", help="Two versions to test against each other, e.g. v1,v2.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only calls at or after this ISO time (e.g. 2026-11-30).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Per-version metrics of a template from the call log and feedback (calls, latency,
    tokens, grounding failures, like rate, agents' edits), and with --compare a significance
    test between two versions (Fisher's exact test for rates, Mann-Whitney U otherwise)."""
    from assistant.infra.store import Store  # lazy: CLI start-up, +12 ms
    from assistant.prompts.metrics import (  # lazy: CLI start-up, +1.6 s
        compare,
        metrics_markdown,
        version_metrics,
    )

    store = Store.from_settings(_settings())
    per_version = version_metrics(store, name, since=since)
    comparison = None
    if compare_with:
        a, sep, b = compare_with.partition(",")
        if not sep or not a.strip() or not b.strip():
            raise InputError(f"--compare takes two versions, got '{compare_with}'.",
                             "Example: --compare v1,v2")
        comparison = compare(store, name, a.strip(), b.strip(), since=since)
    if as_json:
        typer.echo(json.dumps({"versions": {k: v.as_dict() for k, v in per_version.items()},
                               "comparison": comparison.as_dict() if comparison else None},
                              indent=2))
        return
    typer.echo(metrics_markdown(per_version))
    if comparison is not None:
        typer.echo("\n" + comparison.markdown())


@prompts_app.command("test")
@friendly
def prompts_test(
    name: Annotated[str, typer.Argument(help="Template name.")],
    version: Annotated[int | None, typer.Option(min=1, help="Version (default: latest).")
                       ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
    as_: AsOption = None,
) -> None:
    """Run the template's tests on the configured model: a table and the pass rate.
    Exit code 1 when any check fails."""
    from assistant.infra.llm import LLMClient, build_model  # lazy: CLI start-up, +12 ms

    settings = _settings()
    studio = _prompt_versions()
    model = build_model(settings)
    run = studio.run_tests(name, version, LLMClient(model, studio.store),
                           actor=_actor(as_))
    typer.echo(json.dumps(run.as_dict(), indent=2) if as_json else run.table())
    if not run.passed:
        raise typer.Exit(1)


@prompts_app.command("set-tests")
@friendly
def prompts_set_tests(
    name: Annotated[str, typer.Argument(help="Template name.")],
    file: Annotated[Path, typer.Argument(help="YAML/JSON: a list of cases (or `cases:`).")],
    as_: AsOption = None,
) -> None:
    """Replace a template's test cases (validated first; see prompts/tests/*.yaml)."""

    text = _read_text(file)
    cases = _prompt_versions().set_tests(name, text, author=_actor(as_))
    typer.echo(f"{len(cases)} test case(s) saved for {name}")


@prompts_app.command("export")
@friendly
def prompts_export(
    dir_: Annotated[Path | None, typer.Option(
        "--dir", help="Target folder (default: TAILOR_PROMPTS_DIR).")] = None,
    label: Annotated[str, typer.Option(help="Which label's versions to write.")
                     ] = "production",
) -> None:
    """Write each template's production version to DIR/<name>.yaml (and its tests to
    DIR/tests/) for code review."""
    written = _prompt_versions().export(dir_, label=label)
    for path in written:
        typer.echo(f"wrote {path}")
    if not written:
        typer.echo("nothing changed")


@prompts_app.command("sync")
@friendly
def prompts_sync(
    promote: Annotated[bool, typer.Option(
        help="Also label the imported versions production (logged).")] = False,
    as_: AsOption = None,
) -> None:
    """Import shipped files changed since their last import as new versions."""
    versions = _prompt_versions().sync_files(author=_actor(as_) if as_ else "files",
                                             promote=promote)
    for v in versions:
        typer.echo(f"imported {v.name} v{v.version}" + (" (production)" if promote else ""))
    if not versions:
        typer.echo("shipped files unchanged")


if __name__ == "__main__":
    app()
