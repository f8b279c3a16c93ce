"""Shared fixtures. Tests never use the network beyond 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.config import REPO_ROOT, Settings, load_settings
from assistant.llm import ScriptedModel
from assistant.service import AssistantService

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of computed embeddings for the whole run (catalog descriptions are
    embedded once, not once per test)."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, embedding_cache: Path) -> None:
    """No test sees the developer's TAILOR_*/OPENAI_* variables or .env file."""
    for key in list(os.environ):
        if key.startswith("TAILOR_") or key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TAILOR_CACHE", str(embedding_cache))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", llm_provider="scripted")


@pytest.fixture
def scripted() -> ScriptedModel:
    return ScriptedModel(["Hello! How can I help you today?", "Candles make a lovely gift."])


@pytest.fixture
def service(settings: Settings, scripted: ScriptedModel) -> AssistantService:
    return AssistantService.from_settings(settings, model=scripted)
