"""The console script, through typer's runner (in process)."""

import json

import pytest
from typer.testing import CliRunner

from assistant.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args", [[], ["serve"], ["chat"], ["config"], ["calls"],
                                  ["templates"], ["templates", "list"], ["templates", "check"]])
def test_every_command_has_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_config_masks_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    result = runner.invoke(app, ["config"])
    data = json.loads(result.output)
    assert data["openai_api_key"] == "***" and data["resolved_provider"] == "openai"
    assert "sk-very-secret" not in result.output


def test_chat_then_calls_show_the_logged_call(monkeypatch, tmp_path):
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("TAILOR_LLM_PROVIDER", "scripted")
    first = runner.invoke(app, ["chat", "hi"])  # the guided questionnaire's first question
    assert first.exit_code == 0 and "?" in first.stdout
    session = first.stderr.strip().removeprefix("session: ")
    leave = runner.invoke(app, ["chat", "just chat", "--session", session])
    assert leave.stdout.startswith("Sure, let's just chat")
    result = runner.invoke(app, ["chat", "hello cli", "--session", session])
    assert result.exit_code == 0
    assert "(scripted) You said: hello cli" in result.stdout
    again = runner.invoke(app, ["chat", "second", "--session", session])
    assert again.stderr.strip() == f"session: {session}"
    calls = json.loads(runner.invoke(app, ["calls"]).stdout)
    assert [c["session_id"] for c in calls] == [session, session]
    assert {c["template_name"] for c in calls} == {"chat"}


def test_errors_are_one_line_with_hint_and_exit_2(monkeypatch, tmp_path):
    monkeypatch.setenv("TAILOR_LLM_PROVIDER", "scripted")
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "d"))
    result = runner.invoke(app, ["chat", "   "])
    assert result.exit_code == 2
    assert "error: Your message is empty." in result.stderr and "hint:" in result.stderr
    bad = tmp_path / "prompts"
    bad.mkdir()
    (bad / "chat.yaml").write_text("name: chat\n  description: oops\n")
    monkeypatch.setenv("TAILOR_PROMPTS_DIR", str(bad))
    result = runner.invoke(app, ["templates", "check"])
    assert result.exit_code == 2 and f"{bad / 'chat.yaml'}:" in result.stderr
    monkeypatch.setenv("TAILOR_PORT", "abc")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2 and "TAILOR_PORT='abc'" in result.stderr
    assert "Traceback" not in result.output
