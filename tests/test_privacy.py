"""Issue 15, "your data" (service/privacy.py): export and erase of a chat session's data,
retention, the audit log; after an erase no byte of the session's words is left in any file
of the data dir (SQLite with its write-ahead log, Chroma's files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app as cli
from assistant.core.config import load_settings
from assistant.core.errors import InputError
from assistant.infra.llm import ScriptedModel
from assistant.service.assistant import AssistantService
from assistant.service.privacy import subject_key
from tests.conftest import copy_shop, link

MARK = "Zorblaxia"  # a word nobody else writes: found on disk only if kept
SECRET = "Quuxwidget"


def files_holding(folder: Path, word: str) -> list[str]:
    """Files under ``folder`` whose bytes hold ``word`` (UTF-8), free pages and logs too."""
    needle = word.encode()
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and needle in p.read_bytes())


@pytest.fixture
def shop(tmp_path: Path, staff_shop: Path) -> tuple[Path, Path]:
    return copy_shop(staff_shop, tmp_path / "shop")


@pytest.fixture
def svc(shop: tuple[Path, Path]) -> AssistantService:
    data, orders = shop
    settings = load_settings(data_dir=data, llm_provider="scripted", orders=orders)
    return AssistantService.from_settings(settings, model=ScriptedModel(["(model)"]))


def talk(svc: AssistantService, words: str) -> str:
    """A session with the words in a message, the facts and the profile (also in Chroma)."""
    sid = svc.new_session()
    svc.guided_view(sid)  # the chat opens with its first question, as the page does
    list(svc.turn(sid, f"a birthday gift for my aunt {words}, she loves candles, about £20"))
    svc.answer(sid, "anything_else", f"she is called {words} and likes lavender")
    svc.parts.profile_writer().flush(timeout=60)
    return sid


def test_export_holds_everything_stored_for_the_session(svc: AssistantService) -> None:
    sid = talk(svc, MARK)
    link(svc, sid, "17850")
    svc.parts.profile_writer().flush(timeout=60)
    data = svc.my_data(sid)
    said = [m["content"] for m in data["messages"] if m["role"] == "user"]
    assert any(MARK in m for m in said)
    answers = data["questionnaire"]["answers"]
    assert answers["recipient"] == "family" and MARK in answers["anything_else"]
    assert data["questionnaire"]["sources"]["recipient"] == "said"
    assert MARK in data["profile"]["document"] and data["profile"]["customer_id"] == "17850"
    assert data["customer"]["customer_id"] == "17850" and sid in data["customer"]["session_ids"]
    [entry] = svc.store.privacy_audit()
    assert entry["action"] == "export" and entry["subject"] == subject_key("session", sid)
    assert MARK not in json.dumps(entry)


def test_erase_leaves_no_byte_of_the_session_in_the_data_dir(
        svc: AssistantService, shop: tuple[Path, Path]) -> None:
    data_dir = shop[0]
    keep = talk(svc, SECRET)  # another person's session stays whole
    sid = talk(svc, MARK)
    assert files_holding(data_dir, MARK)  # it was written (SQLite and Chroma)
    assert any("chroma" in f for f in files_holding(data_dir, MARK))
    counts = svc.erase(sid)
    assert counts["messages"] >= 2 and counts["profile"] == 1 and counts["sessions"] == 1
    assert counts["vector_profiles"] == 1
    assert files_holding(data_dir, MARK) == []
    # the other session is untouched, in SQLite and in Chroma
    assert files_holding(data_dir, SECRET)
    assert SECRET in svc.my_data(keep)["profile"]["document"]
    hits = svc.parts.profile_index().store.query("profiles", f"{SECRET} lavender", k=5)
    assert keep in [h["id"] for h in hits] and sid not in [h["id"] for h in hits]
    # export after erase, erase twice: a clear answer, nothing else lost
    with pytest.raises(InputError, match="no data for this session"):
        svc.my_data(sid)
    with pytest.raises(InputError, match="nothing to erase"):
        svc.erase(sid)
    assert svc.my_data(keep)["messages"]
    # the chat goes on in a new session; the audit log has the erase, not the words
    assert svc.pending_question(svc.new_session()).id
    erase = next(e for e in svc.store.privacy_audit() if e["action"] == "erase")
    assert erase["subject"] == subject_key("session", sid) and erase["details"]["messages"]
    assert MARK not in json.dumps(svc.store.privacy_audit())


def test_a_verified_customer_erases_what_the_app_stored_about_them(
        svc: AssistantService) -> None:
    first, second = talk(svc, MARK), talk(svc, SECRET)
    link(svc, first, "17850")
    link(svc, second, "17850")
    run = svc.staff.desk.start_draft(agent="ann", customer_id="17850",
                                     ticket=f"Where is my order? {MARK}")
    run.collect()
    assert svc.store.drafts_for("17850")
    counts = svc.erase(first)
    assert counts["sessions"] == 2 and counts["drafts"] == 1
    assert svc.store.drafts_for("17850") == []
    assert svc.store.sessions_of_customer("17850") == []


def test_retention_purges_idle_sessions_only(svc: AssistantService) -> None:
    old, recent = talk(svc, MARK), talk(svc, SECRET)
    with svc.store.connect() as conn:
        conn.exec_driver_sql("UPDATE sessions SET updated_at = "
                             "'2020-01-01T00:00:00.000+00:00' WHERE id = ?", (old,))
    # desk exposures of a policy experiment have no session: their own time counts
    svc.store.add_events([
        {"kind": "exposure", "customer_id": "17850", "variant": "p/A",
         "at": "2020-01-01T00:00:00.000+00:00"},
        {"kind": "exposure", "customer_id": "12583", "variant": "p/B"},
        # the simulator's events name sessions that were never stored
        {"kind": "impression", "session_id": "SIMULATED-1", "customer_id": "17850",
         "item": "85123A", "at": "2020-01-01T00:00:00.000+00:00"},
        {"kind": "impression", "session_id": "SIMULATED-2", "customer_id": "12583",
         "item": "85123A"}])
    assert svc.apply_retention() is None  # no retention set
    svc.settings.retention_days = 30
    counts = svc.apply_retention()
    assert counts["sessions"] == 1 and counts["events"] >= 1
    assert svc.store.get_session(old) is None and svc.store.get_session(recent)
    assert [e["customer_id"] for e in svc.store.events(kinds=("exposure",))] == ["12583"]
    assert [e["session_id"] for e in svc.store.events(kinds=("impression",))
            if e["session_id"].startswith("SIMULATED-")] == ["SIMULATED-2"]
    assert svc.store.privacy_audit()[0]["action"] == "purge"


def test_draft_retention_erases_old_desk_drafts(svc: AssistantService) -> None:
    common = dict(agent="alex", customer_id="17850", template_name="support_draft",
                  template_version="1", model="m", draft="d", status="clean")
    old = svc.store.add_draft(ticket="my address is 1 Old Street", **common)
    new = svc.store.add_draft(ticket="where is my parcel?", **common)
    with svc.store.connect() as conn:
        conn.exec_driver_sql("UPDATE drafts SET created_at = '2020-01-01T00:00:00+00:00' "
                             "WHERE id = ?", (old,))
    svc.settings.draft_retention_days = 90
    counts = svc.apply_retention()
    assert counts == {"drafts": 1}
    assert svc.store.draft(old) is None and svc.store.draft(new)
    audit = svc.store.privacy_audit()[0]
    assert audit["action"] == "purge" and audit["details"] == {"drafts": 1}
    assert svc.apply_retention() == {"drafts": 0}  # nothing older left


def test_privacy_cli_exports_erases_and_purges(shop: tuple[Path, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data, orders = shop
    monkeypatch.setenv("TAILOR_DATA_DIR", str(data))
    monkeypatch.setenv("TAILOR_ORDERS", str(orders))
    monkeypatch.setenv("TAILOR_LLM_PROVIDER", "scripted")
    svc = AssistantService.from_settings(load_settings(), model=ScriptedModel(["(model)"]))
    sid = talk(svc, MARK)
    runner = CliRunner()
    out = runner.invoke(cli, ["privacy", "export", "--session", sid, "--actor", "olivia"])
    assert out.exit_code == 0, out.output
    assert MARK in json.loads(out.output)["profile"]["document"]
    bad = runner.invoke(cli, ["privacy", "export"])
    assert bad.exit_code != 0 and "exactly one of --session and --customer" in bad.output
    out = runner.invoke(cli, ["privacy", "erase", "--session", sid, "--actor", "olivia"])
    assert out.exit_code == 0 and "messages" in out.output, out.output
    out = runner.invoke(cli, ["privacy", "purge", "--older-than", "0"])
    assert out.exit_code != 0 and "more than 0 days" in out.output
    out = runner.invoke(cli, ["privacy", "purge", "--older-than", "365"])
    assert out.exit_code == 0 and "sessions 0" in out.output, out.output
    actors = {e["actor"] for e in svc.store.privacy_audit()}
    assert actors == {"olivia"}


def test_sessions_nobody_wrote_in_expire(svc: AssistantService) -> None:
    """Issue 15: every page load or API client makes a session; the empty ones go after an
    hour idle, the ones with something said stay (retention decides about those)."""
    empty = [svc.new_session() for _ in range(3)]
    svc.guided_view(empty[0])  # the first question shown, nothing answered
    used = talk(svc, MARK)
    with svc.store.connect() as conn:
        conn.exec_driver_sql("UPDATE sessions SET updated_at = "
                             "'2020-01-01T00:00:00.000+00:00'")
    assert svc.expire_sessions() == 3
    assert all(svc.store.get_session(s) is None for s in empty)
    assert svc.store.get_session(used) and svc.my_data(used)["messages"]
