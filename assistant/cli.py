"""``assistant``: the console script. Every command has ``--help``."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from assistant.config import Settings, load_settings
from assistant.errors import AssistantError

app = typer.Typer(help="Tailor: a personalization assistant for online shops (offline by default).",
                  no_args_is_help=True, add_completion=False)
templates_app = typer.Typer(help="Prompt templates in prompts/.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")
segments_app = typer.Typer(help="Customer segments from order data.", no_args_is_help=True)
app.add_typer(segments_app, name="segments")

log = logging.getLogger("assistant")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "chromadb", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn AssistantError into 'error: ... / hint: ...' on stderr and exit code 2."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AssistantError as err:
            typer.secho(f"error: {err.message}", fg="red", err=True)
            if err.hint:
                typer.secho(f"hint: {err.hint}", err=True)
            raise typer.Exit(2) from None

    return run


def _settings(**overrides: Any) -> Settings:
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (TAILOR_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TAILOR_PORT).")] = None,
) -> None:
    """Start the web app (Chat tab) on the configured model."""
    from assistant.service import AssistantService
    from assistant.ui import launch

    _setup_logging()
    settings = _settings(host=host, port=port)
    service = AssistantService.from_settings(settings)
    log.info("Tailor: %s; data in %s", service.describe(), settings.data_dir)
    service.warm_up()
    if settings.auto_build_segments:
        threading.Thread(target=_first_run_segments, args=(service,), daemon=True,
                         name="first-run-segments").start()
    log.info("open http://%s:%s", settings.host, settings.port)
    launch(service)


def _first_run_segments(service: Any) -> None:
    try:
        summary = service.ensure_segments()
        if summary:
            log.info("segments built: %s customers, %s", summary["customers"],
                     summary["segments"])
    except AssistantError as err:
        log.warning("segments not built: %s (%s)", err.message, err.hint)


@app.command()
@friendly
def chat(
    message: Annotated[str, typer.Argument(help="What to say.")],
    session: Annotated[str | None, typer.Option(help="Continue this session id.")] = None,
) -> None:
    """Send one chat message and stream the reply to stdout (session id on stderr)."""
    from assistant.service import AssistantService

    service = AssistantService.from_settings(_settings())
    sid, _ = service.resume(session)
    for delta in service.chat(sid, message):
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
    from assistant.store import Store

    rows = Store(_settings().db_path).llm_calls(limit)
    typer.echo(json.dumps([r.model_dump() for r in rows], indent=2))


@templates_app.command("list")
@friendly
def templates_list() -> None:
    """List templates with their variables."""
    from assistant.prompts import TemplateRegistry

    for tpl in TemplateRegistry(_settings().prompts_dir):
        variables = ", ".join(f"{n}:{v.type}{'' if v.required else '?'}"
                              for n, v in tpl.variables.items())
        typer.echo(f"{tpl.name} ({tpl.version}): {tpl.description}\n  variables: {variables}")


@templates_app.command("check")
@friendly
def templates_check() -> None:
    """Validate every template file (exit 2 with file and line on the first problem)."""
    from assistant.prompts import TemplateRegistry

    reg = TemplateRegistry(_settings().prompts_dir)
    typer.echo(f"{len(reg.templates)} template(s) OK")


class _Bar:
    """tqdm progress bar on stderr driven by (stage, fraction) callbacks."""

    def __init__(self, enabled: bool) -> None:
        from tqdm import tqdm

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
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ingest orders, compute features, discover segments, train the segment classifier.
    Rejected rows are written to <data dir>/artifacts/last-rejects.csv with their reason."""
    from assistant.behaviour import parse_map_options
    from assistant.segmentation import build_segment_model

    settings = _settings()
    bar = _Bar(enabled=not as_json and sys.stderr.isatty())
    try:
        summary = build_segment_model(orders, settings.artifacts_dir,
                                      mapping=parse_map_options(map_),
                                      return_prefix=return_prefix,
                                      reference_date=reference_date, progress=bar)
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
    """Cross-validate a classifier on any table; compare with the majority baseline."""
    from assistant.behaviour import read_table
    from assistant.segmentation import train_table

    result = train_table(read_table(table), label)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['rows']:,} rows, {len(result['classes'])} classes, "
               f"{result['folds']}-fold CV")
    typer.echo(f"accuracy {result['accuracy']:.3f}  macro-F1 {result['macro_f1']:.3f}  "
               f"(majority baseline: accuracy {result['baseline']['accuracy']:.3f}, "
               f"macro-F1 {result['baseline']['macro_f1']:.3f})")


@segments_app.command("show")
@friendly
def segments_show(
    customer: Annotated[str, typer.Argument(help="Customer id from the order data.")],
) -> None:
    """Segment of a known customer, with probability and reasons, as JSON."""
    from assistant.service import AssistantService

    service = AssistantService.from_settings(_settings())
    typer.echo(json.dumps(service.segment_of_customer(customer), indent=2))


if __name__ == "__main__":
    app()
