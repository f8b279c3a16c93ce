from pathlib import Path

import pytest

from assistant.core.config import load_settings
from assistant.core.errors import ConfigError


def test_defaults_are_local_and_loopback():
    s = load_settings()
    assert s.host == "127.0.0.1"
    assert s.port == 7860
    assert s.resolved_provider == "local"
    assert s.resolved_model == "SmolLM2-135M-Instruct"
    assert s.db_path.parent == s.data_dir


def test_env_prefix_and_openai_aliases(monkeypatch, tmp_path):
    monkeypatch.setenv("TAILOR_PORT", "8123")
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    s = load_settings()
    assert s.port == 8123
    assert s.data_dir == Path(tmp_path / "d")
    assert s.resolved_provider == "openai"  # auto + key
    assert s.openai_api_key.get_secret_value() == "sk-test-123"
    assert "sk-test-123" not in repr(s)
    assert s.describe()["openai_api_key"] == "***"


def test_auto_picks_openai_on_base_url_only(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert load_settings().resolved_provider == "openai"


def test_explicit_local_wins_over_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    monkeypatch.setenv("TAILOR_LLM_PROVIDER", "LOCAL")
    assert load_settings().resolved_provider == "local"


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("TAILOR_SHOP_NAME=Corner Shop\n")  # cwd is tmp_path
    assert load_settings().shop_name == "Corner Shop"


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("TAILOR_PORT", "abc", "TAILOR_PORT='abc'"),
        ("TAILOR_PORT", "70000", "TAILOR_PORT"),
        ("TAILOR_LLM_PROVIDER", "gemini", "TAILOR_LLM_PROVIDER='gemini'"),
        ("TAILOR_LLM_TIMEOUT", "-1", "TAILOR_LLM_TIMEOUT"),
    ],
)
def test_invalid_values_give_one_clear_error(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert needle in exc.value.message
    assert ".env.example" in exc.value.hint
