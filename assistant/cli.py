"""``assistant``: the console script. Every command has ``--help``."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

import typer

from assistant.config import Settings, load_settings
from assistant.errors import AssistantError

app = typer.Typer(help="Tailor: a personalization assistant for online shops (offline by default).",
                  no_args_is_help=True, add_completion=False)
templates_app = typer.Typer(help="Prompt templates in prompts/.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")

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
    log.info("open http://%s:%s", settings.host, settings.port)
    launch(service)


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


if __name__ == "__main__":
    app()
