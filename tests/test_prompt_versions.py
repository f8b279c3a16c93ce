"""Prompt studio domain (assistant/prompts/versions.py): immutable versions, validation at
the field, optimistic saves under concurrency, labels and their audit log, the production
test gate, rollback, per-template tests, the running app's production view, export."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from assistant.core.config import REPO_ROOT
from assistant.infra.llm import LLMClient, ScriptedModel
from assistant.infra.store import Store
from assistant.prompts.checks import MAX_BODY_BYTES, FieldError, TemplateValidationError
from assistant.prompts.records import ConflictError, PromotionBlockedError, body_sha
from assistant.prompts.serving import ProductionTemplates
from assistant.prompts.templates import load_template
from assistant.prompts.versions import PromptVersions

SHIPPED = ("answer_extraction", "chat", "questionnaire", "recommendation", "support_draft")
PASSING_CHAT = [{"name": "greets", "vars": {"shop_name": "Tailor Gifts", "message": "hi"},
                 "assert": [{"type": "contains", "value": "Welcome"},
                            {"type": "max_length", "value": 200}]}]


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    target = tmp_path / "prompts"
    shutil.copytree(REPO_ROOT / "prompts", target)
    return target


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db" / "tailor.sqlite3")


@pytest.fixture
def studio(store: Store, prompts_dir: Path) -> PromptVersions:
    versions = PromptVersions(store, prompts_dir)
    versions.seed()
    return versions


def llm(store: Store, reply: str) -> LLMClient:
    return LLMClient(ScriptedModel([reply]), store)


def chat_body(studio: PromptVersions, old: str = "two or three short", new: str = "two short"
              ) -> str:
    body = studio.get("chat", 1).body
    assert old in body
    return body.replace(old, new)


def promote(studio: PromptVersions, version: int, actor: str = "olga") -> None:
    studio.set_label("chat", "production", version, actor=actor, override=True,
                     reason="test setup")


# --------------------------------------------------------------------------- seeding
def test_seed_is_idempotent_and_labels_production(studio: PromptVersions, store: Store,
                                                  prompts_dir: Path) -> None:
    assert studio.names() == list(SHIPPED)
    assert studio.seed() == [] and studio.seed(prompts_dir) == []
    for name in SHIPPED:
        v = studio.get(name)
        assert (v.version, v.author, v.labels) == (1, "files", ("production",))
        assert v.body == (prompts_dir / f"{name}.yaml").read_text()
        assert v.template is not None and v.template.version == "v1"
        assert [e.kind for e in studio.label_history(name)] == ["seed"]
        assert studio.tests(name), f"{name} has seeded test cases"
    assert store.latest_template_version("chat") == 1


def test_sync_files_imports_only_changed_shipped_files(studio: PromptVersions,
                                                       prompts_dir: Path) -> None:
    ops = studio.save("chat", chat_body(studio), author="olga", note="ops edit",
                      base_version=1)
    assert studio.sync_files() == []  # ops' edit is not reverted by the unchanged file
    path = prompts_dir / "chat.yaml"
    path.write_text(path.read_text().replace("friendly sentences", "kind sentences"))
    [imported] = studio.sync_files()
    assert (imported.version, imported.author, imported.base_version) == (3, "files",
                                                                          ops.version)
    assert "kind sentences" in imported.body and imported.labels == ()
    assert studio.sync_files() == []


# --------------------------------------------------------------------------- saving
def test_save_creates_immutable_versions(studio: PromptVersions, store: Store) -> None:
    v2 = studio.save("chat", chat_body(studio), author="olga", note="shorter replies",
                     base_version=1)
    assert (v2.version, v2.author, v2.note, v2.base_version) == (2, "olga", "shorter replies", 1)
    assert v2.template is not None and v2.template.version == "v2"
    assert "two short" in v2.template.messages[0].content
    assert "two or three" in studio.get("chat", 1).body  # v1 untouched
    assert studio.get("chat", label="production").version == 1
    with sqlite3.connect(store.path) as conn:
        for sql in ("UPDATE template_versions SET body = 'x'", "DELETE FROM template_versions",
                    "DELETE FROM template_label_events"):
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(sql)
    with pytest.raises(FieldError, match="Nothing changed"):
        studio.save("chat", v2.body, author="olga", note="same", base_version=2)


def test_save_accepts_a_mapping(studio: PromptVersions) -> None:
    import yaml

    data = yaml.safe_load(studio.get("chat").body)
    data["parameters"]["temperature"] = 0.5
    v2 = studio.save("chat", data, author="olga", note="warmer", base_version=1)
    assert v2.template.parameters.temperature == 0.5
    assert "content: |" in v2.body or "content: >" in v2.body or "content:" in v2.body


@pytest.mark.parametrize("note", ["", "   ", None])
def test_note_is_required(studio: PromptVersions, note: str | None) -> None:
    with pytest.raises(FieldError) as err:
        studio.save("chat", chat_body(studio), author="olga", note=note, base_version=1)
    assert err.value.field == "note" and "note is required" in err.value.message
    assert studio.get("chat").version == 1


def test_a_200_kb_template_is_refused(studio: PromptVersions) -> None:
    body = chat_body(studio) + "# " + "x" * 200_000 + "\n"
    with pytest.raises(TemplateValidationError) as err:
        studio.save("chat", body, author="olga", note="huge", base_version=1)
    assert err.value.field == "body"
    assert "196 KB" in err.value.message and f"{MAX_BODY_BYTES // 1024} KB" in err.value.message
    assert studio.get("chat").version == 1


BAD_EDITS = [
    # (what, old, new, field, words in the message)
    ("unclosed tag", '"{{message}}"', '"{{message"', "messages.2.content",
     "mustache syntax error"),
    ("unclosed section", "{{shop_name}}, an online", "{{#shop_name}}, an online",
     "messages.0.content", "never closed"),
    ("unknown variable", "Do not invent prices", "Greet {{customer_name}}. Do not invent prices",
     "messages.0.content", "'customer_name', which is not declared"),
    ("renamed in the text only", "assistant of {{shop_name}}", "assistant of {{store_name}}",
     "messages.0.content", "'store_name', which is not declared"),
    ("renamed in both places", "shop_name", "store_name", "variables",
     "'shop_name' is passed by the app"),
    ("temperature out of range", "temperature: 0.2", "temperature: 5",
     "parameters.temperature", "less than or equal to 2"),
    ("max_tokens out of range", "max_tokens: 160", "max_tokens: 0", "parameters.max_tokens",
     "greater than or equal to 1"),
    ("unknown parameter", "top_p: 0.9", "top_k: 40", "parameters.top_k",
     "Extra inputs are not permitted"),
    ("new required variable", "  message:\n", "  mood:\n    type: string\n  message:\n",
     "variables.mood.required", "the app does not pass it"),
    ("type changed", "shop_name:\n    type: string", "shop_name:\n    type: integer",
     "variables.shop_name.type", "must stay of type string"),
    ("name changed", "name: chat", "name: chit", "name", "this template is 'chat'"),
    ("broken YAML", "parameters:\n", "parameters:\n  - [\n", "body", "not valid YAML"),
]


@pytest.mark.parametrize(("what", "old", "new", "field", "words"), BAD_EDITS,
                         ids=[b[0] for b in BAD_EDITS])
def test_bad_edits_name_the_field_and_save_nothing(studio: PromptVersions, what: str, old: str,
                                                   new: str, field: str, words: str) -> None:
    body = chat_body(studio, old, new)
    problems = [p for p in studio.validate("chat", body) if p.level == "error"]
    assert problems and problems[0].field == field, problems
    assert words in problems[0].message
    with pytest.raises(TemplateValidationError) as err:
        studio.save("chat", body, author="olga", note=what, base_version=1)
    assert err.value.field == field and field in err.value.message
    assert words in err.value.message
    if field != "body" or what == "broken YAML":
        assert "line" in err.value.message  # and the line in the YAML
    assert studio.get("chat").version == 1 and len(studio.history("chat")) == 1


def test_texts_the_app_reads_must_stay(studio: PromptVersions) -> None:
    body = studio.get("questionnaire").body
    edited = body.replace('  ack_skip: "No problem, let\'s skip that."\n', "")
    assert edited != body
    with pytest.raises(TemplateValidationError) as err:
        studio.save("questionnaire", edited, author="olga", note="tidy", base_version=1)
    assert err.value.field == "texts" and "'ack_skip' is used by the app" in err.value.message
    reworded = body.replace("No problem, let's skip that.", "Fine, we'll skip that one.")
    assert studio.save("questionnaire", reworded, author="olga", note="reword",
                       base_version=1).version == 2


def test_a_base_version_from_the_future_is_refused(studio: PromptVersions) -> None:
    with pytest.raises(FieldError) as err:
        studio.save("chat", chat_body(studio), author="olga", note="x", base_version=5)
    assert err.value.field == "base_version" and "no version 5" in err.value.message


def test_unused_declared_variable_is_only_a_warning(studio: PromptVersions) -> None:
    body = chat_body(studio, '"{{message}}"', '"Hello"')
    problems = studio.validate("chat", body)
    assert [(p.level, p.field) for p in problems] == [("warning", "variables.message")]
    assert studio.save("chat", body, author="olga", note="fixed text", base_version=1).version == 2


def test_a_stale_base_version_gets_a_conflict_with_a_diff(studio: PromptVersions) -> None:
    studio.save("chat", chat_body(studio), author="olga", note="olga's edit", base_version=1)
    mine = chat_body(studio, "Do not invent prices", "Never invent prices")
    with pytest.raises(ConflictError) as err:
        studio.save("chat", mine, author="bob", note="bob's edit", base_version=1)
    conflict = err.value
    assert conflict.latest_version == 2 and conflict.latest.author == "olga"
    assert "olga's edit" in conflict.message and "Nothing was saved" in conflict.message
    assert "--- chat v2 (latest)" in conflict.diff
    assert "-      Answer in two short" in conflict.diff
    assert "+      Answer in two or three short" in conflict.diff
    assert "+      order numbers" not in conflict.diff
    assert "Never invent prices" in conflict.diff
    assert studio.get("chat").version == 2


def race(path: Path, prompts_dir: Path, bodies: list[str], base: int) -> list[object]:
    """Two threads, each with its own PromptVersions (two ops in two browsers), save at
    the same moment from the same base version."""
    barrier = threading.Barrier(len(bodies))
    results: list[object] = [None] * len(bodies)

    def save(i: int) -> None:
        mine = PromptVersions(Store(path), prompts_dir)
        barrier.wait()
        try:
            results[i] = mine.save("chat", bodies[i], author=f"op{i}", note="race",
                                   base_version=base)
        except ConflictError as exc:
            results[i] = exc

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_saves_exactly_one_wins(studio: PromptVersions, store: Store,
                                          prompts_dir: Path) -> None:
    for round_ in range(4):
        base = studio.get("chat").version
        bodies = [chat_body(studio, "friendly sentences", f"friendly sentences {round_}{who}")
                  for who in "ab"]
        results = race(store.path, prompts_dir, bodies, base)
        won = [r for r in results if not isinstance(r, ConflictError)]
        lost = [r for r in results if isinstance(r, ConflictError)]
        assert len(won) == 1 and len(lost) == 1, results
        assert won[0].version == base + 1 and lost[0].latest_version == base + 1
        assert lost[0].diff.startswith("---") and "friendly sentences" in lost[0].diff
        assert studio.get("chat").version == base + 1


def test_check_and_insert_is_atomic_in_the_store(studio: PromptVersions,
                                                 store: Store) -> None:
    """Eight writers on separate connections, same base version: exactly one row."""
    barrier = threading.Barrier(8)
    got: list[int | None] = []

    def insert(i: int) -> None:
        mine = Store(store.path)
        barrier.wait()
        got.append(mine.add_template_version("chat", f"body {i}", sha=str(i), author="x",
                                             note="race", base_version=1))

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got, key=lambda v: v or 0) == [None] * 7 + [2]
    assert store.latest_template_version("chat") == 2


# --------------------------------------------------------------------------- labels
def test_labels_move_and_every_move_is_logged(studio: PromptVersions) -> None:
    studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    event = studio.set_label("chat", "staging", 2, actor="olga", reason="try it", share=0.5)
    assert (event.label, event.from_version, event.to_version, event.actor, event.share) == (
        "staging", None, 2, "olga", 0.5)
    assert studio.set_label("chat", "staging", 2, actor="olga", share=0.5) is None  # no-op
    assert studio.get("chat", label="staging").labels == ("staging",)
    removed = studio.remove_label("chat", "staging", actor="olga", reason="done")
    assert removed.to_version is None
    assert [(e.label, e.kind) for e in studio.label_history("chat")] == [
        ("production", "seed"), ("staging", "set"), ("staging", "remove")]
    assert "staging: v2 -> (removed)" in removed.describe()


@pytest.mark.parametrize(("version", "label", "field", "words"), [
    (9, "staging", "version", "has no version 9 (it has versions 1 to 1)"),
    (0, "staging", "version", "has no version 0"),
    (1, "Prod!", "label", "not a label name"),
    (1, "production", "share", "production always serves"),
])
def test_bad_labels_are_refused(studio: PromptVersions, version: int, label: str, field: str,
                                words: str) -> None:
    share = 0.5 if field == "share" else 1.0
    with pytest.raises(FieldError) as err:
        studio.set_label("chat", label, version, actor="olga", share=share)
    assert err.value.field == field and words in err.value.message
    assert [e.kind for e in studio.label_history("chat")] == ["seed"]


def test_a_version_that_fails_validation_is_never_production(studio: PromptVersions,
                                                              store: Store) -> None:
    bad = chat_body(studio, "temperature: 0.2", "temperature: 9")
    with sqlite3.connect(store.path) as conn:  # e.g. written by an older Tailor
        conn.execute("INSERT INTO template_versions (name, version, body, sha, author, note, "
                     "created_at) VALUES ('chat', 2, ?, ?, 'x', 'raw', 'now')",
                     (bad, body_sha(bad)))
    assert studio.get("chat", 2).valid is False
    with pytest.raises(TemplateValidationError, match="parameters.temperature"):
        studio.set_label("chat", "production", 2, actor="olga", override=True, reason="force")
    assert studio.get("chat", label="production").version == 1


def test_promotion_is_blocked_until_the_tests_pass(studio: PromptVersions,
                                                   store: Store) -> None:
    studio.set_tests("chat", PASSING_CHAT, author="olga")
    studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    with pytest.raises(PromotionBlockedError, match="has not been tested"):
        studio.set_label("chat", "production", 2, actor="olga")

    failing = studio.run_tests("chat", 2, llm(store, "Hello there!"), actor="olga")
    assert not failing.passed and failing.pass_rate == 0.5
    with pytest.raises(PromotionBlockedError, match="fails its tests") as err:
        studio.set_label("chat", "production", 2, actor="olga")
    assert err.value.run is not None and err.value.run.id == failing.id
    assert "greets: contains 'Welcome'" in err.value.message

    passing = studio.run_tests("chat", 2, llm(store, "Welcome to Tailor Gifts!"))
    assert passing.passed and passing.pass_rate == 1.0
    event = studio.set_label("chat", "production", 2, actor="olga", reason="tests green")
    assert (event.from_version, event.to_version, event.override) == (1, 2, False)

    # changing the tests invalidates earlier runs
    studio.save("chat", chat_body(studio, "two or three short", "three short"), author="olga",
                note="v3", base_version=2)
    studio.run_tests("chat", 3, llm(store, "Welcome!"))
    studio.set_tests("chat", [*PASSING_CHAT, {**PASSING_CHAT[0], "name": "two"}],
                     author="olga")
    with pytest.raises(PromotionBlockedError, match="current tests"):
        studio.set_label("chat", "production", 3, actor="olga")


def test_override_needs_a_reason_and_is_logged(studio: PromptVersions) -> None:
    studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    for reason in ("", "  "):
        with pytest.raises(FieldError) as err:
            studio.set_label("chat", "production", 2, actor="olga", override=True,
                             reason=reason)
        assert err.value.field == "reason"
    event = studio.set_label("chat", "production", 2, actor="olga", override=True,
                             reason="hotfix for a typo")
    assert event.override and event.reason == "hotfix for a typo"
    assert "OVERRIDE" in event.describe() and "hotfix for a typo" in event.describe()
    assert studio.label_history("chat", "production")[-1] == event


def test_rollback_walks_back_through_production(studio: PromptVersions) -> None:
    studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    studio.save("chat", chat_body(studio, "two or three", "three"), author="olga", note="v3",
                base_version=2)
    promote(studio, 2)
    promote(studio, 3)
    with pytest.raises(FieldError) as err:
        studio.rollback("chat", actor="olga", reason="")
    assert err.value.field == "reason"
    first = studio.rollback("chat", actor="olga", reason="v3 rambles")
    assert (first.kind, first.from_version, first.to_version) == ("rollback", 3, 2)
    second = studio.rollback("chat", actor="bob", reason="v2 too")
    assert (second.from_version, second.to_version) == (2, 1)
    with pytest.raises(FieldError, match="no earlier version"):
        studio.rollback("chat", actor="olga", reason="again")
    assert studio.get("chat", label="production").version == 1
    log = [(e.kind, e.from_version, e.to_version, e.actor) for e in studio.label_history("chat")]
    assert log == [("seed", None, 1, "files"), ("set", 1, 2, "olga"), ("set", 2, 3, "olga"),
                   ("rollback", 3, 2, "olga"), ("rollback", 2, 1, "bob")]


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize(("case", "field", "words"), [
    ({"name": "a", "vars": {}, "assert": [{"type": "similar", "value": "x"}]},
     "cases[0].assert.0.type", "unknown assertion type 'similar'"),
    ({"name": "a", "assert": [{"type": "regex", "value": "([a-z"}]}, "cases[0].assert.0",
     "bad regex"),
    ({"name": "a", "assert": [{"type": "json_schema", "value": {"type": "nonsense"}}]},
     "cases[0].assert.0", "not a valid JSON Schema"),
    ({"name": "a", "assert": [{"type": "max_length", "value": "long"}]}, "cases[0].assert.0",
     "positive whole number"),
    ({"name": "a", "assert": []}, "cases[0].assert", "at least 1"),
    ({"name": "a", "vars": {"shop_name": "x", "mesage": "hi"},
      "assert": [{"type": "contains", "value": "x"}]}, "cases[0].vars", "undeclared"),
    ({"name": "a", "vars": {"shop_name": "x"}, "assert": [{"type": "contains", "value": "x"}]},
     "cases[0].vars", "needs a value for 'message'"),
])
def test_bad_test_cases_are_refused(studio: PromptVersions, case: dict, field: str,
                                    words: str) -> None:
    before = studio.tests("chat")
    with pytest.raises(FieldError) as err:
        studio.set_tests("chat", [case], author="olga")
    assert err.value.field == field and words in err.value.message, err.value.message
    assert studio.tests("chat") == before


def test_every_assertion_type(studio: PromptVersions, store: Store) -> None:
    cases = [{
        "name": "json", "vars": {"questions": "region", "message": "France"},
        "assert": [
            {"type": "json_schema", "value": {"type": "object", "required": ["region"],
                                              "properties": {"region": {"enum": ["europe"]}}}},
            {"type": "json_schema", "value": {"type": "object", "required": ["budget"]}},
            {"type": "contains", "value": "europe"},
            {"type": "not_contains", "value": "europe"},
            {"type": "regex", "value": r"^\{.*\}$"},
            {"type": "max_length", "value": 5},
            {"type": "grounding", "value": {"amounts": [400]}},
            {"type": "no_prompt_leak"},
        ]}]
    studio.set_tests("answer_extraction", cases, author="olga")
    run = studio.run_tests("answer_extraction", 1, llm(store, '{"region": "europe"}'))
    assert [r.passed for r in run.results] == [True, False, True, False, True, False, True,
                                               True]
    assert "budget" in run.results[1].detail and "20 characters" in run.results[5].detail
    assert run.pass_rate == 0.625 and run.cases_passed == 0 and run.cases_total == 1
    table = run.table()
    assert "FAIL" in table and "pass rate 62%" in table
    calls = store.llm_calls()
    assert calls[0].session_id == "prompt-tests" and calls[0].template_version == "v1"

    leak = studio.run_tests("answer_extraction", 1, llm(
        store, "Sure: Reply with one JSON object only, no prose. Use only the question ids"))
    assert not leak.results[-1].passed and "system messages" in leak.results[-1].detail
    assert "not valid JSON" in leak.results[0].detail


def test_grounding_facts_come_from_the_vars(studio: PromptVersions, store: Store) -> None:
    case = next(c for c in studio.tests("recommendation") if c.name == "two candle items")
    studio.set_tests("recommendation", [case.model_dump(by_alias=True)], author="olga")
    good = studio.run_tests("recommendation", 1, llm(
        store, "For you: the WHITE HANGING HEART T-LIGHT HOLDER at £2.95 and the SET OF 3 "
        "CAKE TINS PANTRY DESIGN at £4.95."))
    assert good.passed, good.table()
    bad = studio.run_tests("recommendation", 1, llm(
        store, "The WHITE HANGING HEART T-LIGHT HOLDER is £1.50 today, with free delivery!"))
    grounding = bad.results[0]
    assert not grounding.passed and "£1.50" in grounding.detail
    assert "free delivery" in grounding.detail


def test_a_render_error_fails_the_case_instead_of_the_run(studio: PromptVersions,
                                                           store: Store) -> None:
    studio.set_tests("chat", PASSING_CHAT, author="olga")
    body = chat_body(studio, "  message:\n", "  mood:\n    type: string\n    required: false\n"
                     "  message:\n").replace('"{{message}}"', '"{{message}} {{mood}}"')
    studio.save("chat", body, author="olga", note="mood", base_version=1)
    run = studio.run_tests("chat", 2, llm(store, "Welcome!"))
    assert run.passed  # the optional variable renders empty


# --------------------------------------------------------------------------- the app's view
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_production_templates_pick_up_a_promotion_within_the_interval(
        studio: PromptVersions) -> None:
    clock = Clock()
    app = ProductionTemplates(studio, refresh_seconds=2.0, clock=clock)
    assert app.get("chat").version == "v1"
    assert sorted(t.name for t in app) == list(SHIPPED)
    studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    promote(studio, 2)
    clock.now += 1.0
    assert app.get("chat").version == "v1"  # not re-read yet
    clock.now += 1.1
    tpl = app.get("chat")
    assert tpl.version == "v2" and "two short" in tpl.messages[0].content
    assert app.serving()["chat"]["production"]["version"] == "v2"


def test_production_templates_in_real_time(studio: PromptVersions, store: Store) -> None:
    import time

    from assistant.core.config import load_settings

    settings = load_settings(data_dir=store.path.parent, prompts_dir=studio.directory)
    assert settings.db_path == store.path
    app = ProductionTemplates.from_settings(settings, store, refresh_seconds=0.05)
    studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    promote(studio, 2)
    deadline = time.monotonic() + 2
    while app.get("chat").version != "v2" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.get("chat").version == "v2"


def test_an_unreadable_store_keeps_the_last_good_version(studio: PromptVersions, store: Store,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    clock = Clock()
    studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    promote(studio, 2)
    app = ProductionTemplates(studio, clock=clock, read_timeout=0.1)
    assert app.get("chat").version == "v2"
    store.close()  # the store keeps connections open; an exclusive lock needs them closed
    lock = sqlite3.connect(store.path, isolation_level=None)
    lock.execute("PRAGMA locking_mode = EXCLUSIVE")
    lock.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="assistant.prompts.serving"):
            clock.now += 5
            assert app.get("chat").version == "v2"
        assert "unreadable" in caplog.text and "last good" in caplog.text
        assert "chat v2" in caplog.text
    finally:
        lock.close()
    clock.now += 5
    assert app.refresh() is True and app.get("chat").version == "v2"


def test_a_corrupt_production_row_keeps_the_last_good_version(
        studio: PromptVersions, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    app = ProductionTemplates(studio, clock=clock)
    bad = chat_body(studio, '"{{message}}"', '"{{message"')
    with sqlite3.connect(store.path) as conn:  # bypassing every check, as a damaged row
        conn.execute("INSERT INTO template_versions (name, version, body, sha, author, note, "
                     "created_at) VALUES ('chat', 2, ?, ?, 'x', 'raw', 'now')",
                     (bad, body_sha(bad)))
        conn.execute("UPDATE template_labels SET version = 2 WHERE name = 'chat' "
                     "AND label = 'production'")
    with caplog.at_level(logging.WARNING, logger="assistant.prompts.serving"):
        clock.now += 5
        assert app.get("chat").version == "v1"
    assert "fails validation" in caplog.text and "still serving v1" in caplog.text
    # a fresh process falls back to the shipped file for that template
    fresh = ProductionTemplates(studio, clock=clock)
    assert fresh.get("chat").version.startswith("file-")
    assert fresh.get("recommendation").version == "v1"


def test_a_store_unreadable_at_start_serves_the_shipped_files(
        studio: PromptVersions, store: Store, tmp_path: Path) -> None:
    broken = PromptVersions(Store(tmp_path / "other.sqlite3"), studio.directory)
    broken.store.path.write_bytes(b"this is not a database" * 100)
    app = ProductionTemplates(broken)
    assert app.get("chat").version.startswith("file-")
    with pytest.raises(Exception, match="No template named 'nope'"):
        app.get("nope")


def test_staging_routes_a_share_of_sessions_deterministically(studio: PromptVersions) -> None:
    studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    app = ProductionTemplates(studio, refresh_seconds=3600)
    keys = [f"session-{i}" for i in range(400)]
    assert {app.route("chat", k).version for k in keys} == {"v1"}
    studio.set_label("chat", "staging", 2, actor="olga", share=0.5)
    assert app.refresh()
    routed = [app.route("chat", k).version for k in keys]
    assert 150 < routed.count("v2") < 250
    assert routed == [app.route("chat", k).version for k in keys]  # stable per session
    studio.set_label("chat", "staging", 2, actor="olga", share=1.0, segment="Champions")
    assert app.refresh()
    assert app.route("chat", "s1", segment="Champions").version == "v2"
    assert app.route("chat", "s1", segment="Hibernating").version == "v1"
    assert app.route("chat", "s1").version == "v1"
    studio.remove_label("chat", "staging", actor="olga")
    assert app.refresh()
    assert app.route("chat", "s1", segment="Champions").version == "v1"


# --------------------------------------------------------------------------- export
def test_export_round_trips(studio: PromptVersions, tmp_path: Path) -> None:
    v2 = studio.save("chat", chat_body(studio), author="olga", note="v2", base_version=1)
    promote(studio, 2)
    out = tmp_path / "review"
    written = studio.export(out)
    assert out / "chat.yaml" in written and out / "tests" / "chat.yaml" in written
    assert (out / "chat.yaml").read_text() == v2.body
    for name in SHIPPED:
        assert load_template(out / f"{name}.yaml").name == name
    assert studio.export(out) == []  # unchanged: nothing rewritten
    again = PromptVersions(Store(tmp_path / "fresh.sqlite3"), out)
    assert again.seed() == list(SHIPPED)
    for name in SHIPPED:
        assert again.get(name).body == studio.get(name, label="production").body
        assert again.tests(name) == studio.tests(name)
