"""`assistant prompts ...` through typer's CliRunner (scripted model, real SQLite)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.core.config import REPO_ROOT

runner = CliRunner()
COMMANDS = ["list", "show", "history", "diff", "save", "label", "unlabel", "rollback", "test",
            "set-tests", "export", "sync", "metrics"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    prompts = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", prompts)
    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TAILOR_PROMPTS_DIR", str(prompts))
    monkeypatch.setenv("TAILOR_LLM_PROVIDER", "scripted")
    return tmp_path


def run(*args: str):
    return runner.invoke(app, ["prompts", *args])


def save_edit(env: Path, base: int, old: str, new: str, who: str = "olga"):
    shown = run("show", "chat", "--version", str(base))
    assert shown.exit_code == 0, shown.output
    edited = env / f"chat-{who}.yaml"
    edited.write_text(shown.stdout.replace(old, new))
    return run("save", "chat", "--file", str(edited), "--base", str(base), "--note",
               f"{who} edits", "--as", who)


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_prompts_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_list_and_show(env: Path) -> None:
    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert sorted(rows) == ["answer_extraction", "chat", "questionnaire", "recommendation",
                            "support_draft"]
    assert rows["chat"]["labels"] == {"production": 1} and rows["chat"]["latest_version"] == 1
    assert rows["chat"]["variables"]["history"]["type"] == "messages"
    plain = run("list")
    assert "chat  latest v1  production=v1" in plain.stdout
    shown = run("show", "chat", "--label", "production")
    assert shown.stdout == (env / "prompts" / "chat.yaml").read_text()
    assert "# chat v1 [production] by files" in shown.stderr
    as_json = json.loads(run("show", "chat", "--json").stdout)
    assert as_json["version"] == 1 and as_json["valid"] and "body" in as_json
    missing = run("show", "chat", "--version", "7")
    assert missing.exit_code == 2 and "has no version 7" in missing.stderr


def test_save_conflict_diff_and_history(env: Path) -> None:
    first = save_edit(env, 1, "two or three short", "two short")
    assert first.exit_code == 0 and "saved chat v2" in first.stdout
    late = save_edit(env, 1, "Do not invent prices", "Never invent prices", who="bob")
    assert late.exit_code == 2
    assert "error: Template 'chat' changed since version 1" in late.stderr
    assert "--- chat v2 (latest)" in late.stderr and "+      Answer in two or three" in late.stderr
    assert "Traceback" not in late.output

    diff = run("diff", "chat", "1", "2")
    assert diff.exit_code == 0
    assert "-      Answer in two or three short" in diff.stdout
    assert "+      Answer in two short" in diff.stdout

    history = json.loads(run("history", "chat", "--json").stdout)
    assert [(v["version"], v["author"]) for v in history["versions"]] == [(1, "files"),
                                                                          (2, "olga")]
    assert [e["kind"] for e in history["label_events"]] == ["seed"]
    plain = run("history", "chat").stdout
    assert "v2  " in plain and "olga: olga edits" in plain and "seed by files" in plain


def test_bad_body_and_empty_note_are_refused(env: Path) -> None:
    bad = save_edit(env, 1, "temperature: 0.2", "temperature: 3")
    assert bad.exit_code == 2
    assert "parameters.temperature" in bad.stderr and "less than or equal to 2" in bad.stderr
    body = env / "body.yaml"
    body.write_text((env / "prompts" / "chat.yaml").read_text().replace("two or three", "two"))
    no_note = run("save", "chat", "--file", str(body), "--base", "1", "--note", " ")
    assert no_note.exit_code == 2 and "A note is required" in no_note.stderr
    assert json.loads(run("list", "--json").stdout)[1]["latest_version"] == 1


def test_label_gate_test_override_and_rollback(env: Path) -> None:
    assert save_edit(env, 1, "two or three short", "two short").exit_code == 0
    blocked = run("label", "chat", "2", "production", "--as", "olga")
    assert blocked.exit_code == 2 and "promotion to production is blocked" in blocked.stderr
    assert "assistant prompts test chat --version 2" in blocked.stderr

    tested = run("test", "chat", "--version", "2", "--as", "olga")
    assert tested.exit_code == 0, tested.output  # the scripted echo passes chat's tests
    assert "pass rate 100%" in tested.stdout and "gift idea" in tested.stdout

    promoted = run("label", "chat", "2", "production", "--as", "olga", "--reason", "green")
    assert promoted.exit_code == 0 and "production: v1 -> v2  set by olga" in promoted.stdout
    again = run("label", "chat", "2", "production", "--as", "olga")
    assert "already points at v2" in again.stdout

    staged = run("label", "chat", "1", "staging", "--share", "0.5", "--as", "olga")
    assert staged.exit_code == 0 and "staging: (none) -> v1 50%" in staged.stdout
    unlabelled = run("unlabel", "chat", "staging", "--as", "olga")
    assert unlabelled.exit_code == 0 and "(removed)" in unlabelled.stdout

    no_reason = run("rollback", "chat", "--reason", "", "--as", "olga")
    assert no_reason.exit_code == 2 and "needs a reason" in no_reason.stderr
    rolled = run("rollback", "chat", "--reason", "too terse", "--as", "olga")
    assert rolled.exit_code == 0 and "production: v2 -> v1  rollback by olga" in rolled.stdout

    assert save_edit(env, 2, "two short", "three short").exit_code == 0
    override = run("label", "chat", "3", "production", "--override", "--as", "olga")
    assert override.exit_code == 2 and "needs a reason" in override.stderr
    forced = run("label", "chat", "3", "production", "--override", "--reason", "hotfix",
                 "--as", "olga")
    assert forced.exit_code == 0 and "OVERRIDE" in forced.stdout and "hotfix" in forced.stdout
    events = json.loads(run("history", "chat", "--json").stdout)["label_events"]
    assert [(e["label"], e["kind"], e["to_version"], e["override"]) for e in events] == [
        ("production", "seed", 1, False), ("production", "set", 2, False),
        ("staging", "set", 1, False), ("staging", "remove", None, False),
        ("production", "rollback", 1, False), ("production", "set", 3, True)]


def test_failing_tests_exit_1_and_bad_tests_are_refused(env: Path) -> None:
    failed = run("test", "answer_extraction")
    assert failed.exit_code == 1
    assert "FAIL" in failed.stdout and "not valid JSON" in failed.stdout
    as_json = run("test", "answer_extraction", "--json")
    data = json.loads(as_json.stdout)
    assert data["passed"] is False and data["version"] == 1 and data["model"] == "scripted"

    cases = env / "cases.yaml"
    cases.write_text("cases:\n  - name: x\n    assert:\n      - {type: sounds_good}\n")
    bad = run("set-tests", "chat", str(cases))
    assert bad.exit_code == 2 and "unknown assertion type 'sounds_good'" in bad.stderr
    cases.write_text("- name: x\n  vars: {shop_name: A, message: hi}\n"
                     "  assert: [{type: contains, value: hi}]\n")
    good = run("set-tests", "chat", str(cases), "--as", "olga")
    assert good.exit_code == 0 and "1 test case(s) saved for chat" in good.stdout
    assert run("test", "chat").exit_code == 0


def test_export_and_sync(env: Path) -> None:
    assert save_edit(env, 1, "two or three short", "two short").exit_code == 0
    assert run("label", "chat", "2", "production", "--override", "--reason", "r").exit_code == 0
    out = env / "review"
    exported = run("export", "--dir", str(out))
    assert exported.exit_code == 0 and f"wrote {out / 'chat.yaml'}" in exported.stdout
    assert "two short" in (out / "chat.yaml").read_text()
    assert run("export", "--dir", str(out)).stdout.strip() == "nothing changed"

    assert run("sync").stdout.strip() == "shipped files unchanged"
    shipped = env / "prompts" / "questionnaire.yaml"
    shipped.write_text(shipped.read_text().replace("Thanks, noted.", "Thank you, noted."))
    synced = run("sync", "--promote")
    assert synced.exit_code == 0 and "imported questionnaire v2 (production)" in synced.stdout
    shown = run("show", "questionnaire", "--label", "production")
    assert "Thank you, noted." in shown.stdout


def test_metrics_table_and_comparison(env: Path) -> None:
    from assistant.core.schemas import LLMCall
    from assistant.infra.store import Store

    store = Store(env / "state" / "tailor.sqlite3")
    for version, latency in (("v1", 900.0), ("v2", 300.0)):
        for i in range(6):
            store.log_llm_call(LLMCall(session_id=f"s{i}", template_name="chat",
                                       template_version=version, provider="scripted",
                                       model="scripted", latency_ms=latency + i,
                                       prompt_tokens=50, completion_tokens=20, outcome="ok"))
    store.log_llm_call(LLMCall(session_id="prompt-tests", template_name="chat",
                               template_version="v2", provider="scripted", model="scripted",
                               latency_ms=1.0, outcome="ok"))
    result = run("metrics", "chat", "--compare", "v1,v2")
    assert result.exit_code == 0, result.output
    assert "| v1 | 6 | 0 | 902 ms" in result.output and "| v2 | 6 | 0 | 302 ms" in result.output
    assert "Mann-Whitney U" in result.output and "v2 is better on latency_ms" in result.output
    data = json.loads(run("metrics", "chat", "--json").output)
    assert data["versions"]["v2"]["calls"] == 6  # the test run's call is not traffic
    bad = run("metrics", "chat", "--compare", "v1")
    assert bad.exit_code != 0 and "--compare takes two versions" in bad.output
