"""The Prompt studio's callbacks (assistant/ui/studio.py) called directly, without a browser,
on a real service (scripted model, temporary data dir): the ops role is checked at the
service (``studio_for``), saves record the checked user, bad input becomes the tab's
message or the API's error dict and changes nothing; the builder binds the same functions
so Gradio still injects the request."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import gradio as gr
import pytest
from gradio import helpers

from assistant.core.errors import InputError
from assistant.service.assistant import AssistantService
from assistant.ui import create_staff_app
from assistant.ui.guard import is_guarded
from assistant.ui.studio import (
    ALL_SEGMENTS,
    LOAD_OUTPUTS,
    check,
    first_load,
    load,
    prompt,
    prompt_label,
    prompt_save,
    prompts,
    save,
    stage,
)
from tests.apprunner import PASSWORD

NAME = "recommendation"
NO_CHANGE = gr.update()


@dataclass
class Request:
    """What the callbacks read of Gradio's request: the signed-in user's name."""

    username: str | None


OPS, AGENT = Request("olivia"), Request("alex")


@pytest.fixture
def svc(service: AssistantService) -> AssistantService:
    service.users.add("olivia", PASSWORD, "ops")
    service.users.add("alex", PASSWORD, "agent")
    return service


def body_v1(svc: AssistantService) -> str:
    return svc.staff.studio.version(NAME, 1).body


def cheerful(svc: AssistantService) -> str:
    body = body_v1(svc)
    assert "Write one short, warm message" in body
    return body.replace("Write one short, warm message", "Write one short, cheerful message")


def latest(svc: AssistantService) -> int:
    return svc.staff.studio.version(NAME).version


# --------------------------------------------------------------------------- roles


def test_studio_for_checks_the_ops_role_and_returns_the_checked_name(svc) -> None:
    studio, actor = svc.studio_for("Olivia")
    assert studio is svc.staff.studio and actor == "olivia"
    with pytest.raises(InputError, match="has the role agent; this needs ops"):
        svc.studio_for("alex")
    with pytest.raises(InputError, match="Please sign in"):
        svc.studio_for(None)


def test_non_ops_user_gets_the_role_message_and_nothing_is_saved(svc) -> None:
    out = save(svc, NAME, cheerful(svc), "cheerful wording", 1, AGENT)
    assert out[0].startswith("❌ **Your account &#x27;alex&#x27; has the role agent; "
                             "this needs ops.**")
    assert "assistant users add NAME --role ops" in out[0]
    assert out[1:] == (NO_CHANGE,) * 7
    anonymous = save(svc, NAME, cheerful(svc), "cheerful wording", 1, Request(None))
    assert anonymous[0].startswith("❌ **Please sign in.**")
    assert latest(svc) == 1 and len(svc.staff.studio.history(NAME)) == 1

    # the page load shows nothing to them (the tab shows the refusal instead)
    assert first_load(svc, None, AGENT) == (NO_CHANGE,) * LOAD_OUTPUTS
    # opening a template and the API refuse with the message as a Gradio error
    with pytest.raises(gr.Error, match="has the role agent; this needs ops"):
        load(svc, NAME, AGENT)
    with pytest.raises(gr.Error, match="has the role agent; this needs ops"):
        prompt_save(svc, NAME, cheerful(svc), "", "x", "1", AGENT)
    assert latest(svc) == 1


# --------------------------------------------------------------------------- editing


def test_ops_user_opens_and_saves_a_version(svc) -> None:
    opened = first_load(svc, None, OPS)
    assert len(opened) == LOAD_OUTPUTS
    assert opened[0]["value"] == "answer_extraction" and NAME in opened[0]["choices"]
    opened = load(svc, NAME, OPS)
    assert opened[0]["value"] == NAME and opened[3] == body_v1(svc) and opened[4] == 1
    assert opened[2].startswith(f"**{NAME}** · editing from **v1** (production)")
    assert opened[6]["value"] == 1 and "cases:" in opened[9]

    out = save(svc, NAME, cheerful(svc), "cheerful wording", 1, Request("Olivia"))
    assert out[0] == (f"✅ Saved **v2** of {NAME} (cheerful wording). It serves nobody "
                      "yet: label it in **Rollout**.")
    assert out[1] == 2 and out[2] == "" and out[7] == ""
    assert out[3].startswith(f"**{NAME}** · editing from **v2** (no label) · "
                             "cheerful wording · by olivia")
    choices = out[5]["choices"]
    assert choices[0] == ("v2 · cheerful wording", 2) and choices[1][1] == 1
    assert out[5]["value"] == out[6]["value"] == 2 and "value" not in out[4]
    saved = svc.staff.studio.version(NAME)
    assert saved.version == 2 and saved.author == "olivia" and saved.note == "cheerful wording"
    assert "cheerful message" in saved.body


def test_bad_yaml_returns_the_problem_and_keeps_the_previous_version(svc) -> None:
    broken = body_v1(svc) + "\nmessages: [\n"
    problems, diff = check(svc, NAME, broken, None, OPS)
    assert problems.startswith("❌ **1 error(s)**") and diff == ""
    out = save(svc, NAME, broken, "broken", 1, OPS)
    assert out[0].startswith("❌ **") and "1 error(s)" in out[0]
    assert out[1:] == (NO_CHANGE,) * 7
    typo = save(svc, NAME, body_v1(svc).replace("{{profile}}", "{{profle}}"), "typo", 1, OPS)
    assert "profle" in typo[0] and typo[1] == NO_CHANGE
    assert latest(svc) == 1 and len(svc.staff.studio.history(NAME)) == 1


def test_live_check_and_a_conflict_shows_what_changed(svc) -> None:
    problems, diff = check(svc, NAME, cheerful(svc), 1, OPS)
    assert problems == "✅ **Valid**: it can be saved."
    assert '<span class="tailor-diff-add">+' in diff and "cheerful" in diff
    assert save(svc, NAME, cheerful(svc), "cheerful wording", 1, OPS)[1] == 2
    late = save(svc, NAME, cheerful(svc).replace("cheerful", "joyful"), "joyful", 1, OPS)
    assert "**What changed meanwhile**" in late[0]
    assert late[1] == NO_CHANGE and "tailor-diff" in late[2] and "cheerful" in late[2]
    assert late[3:] == (NO_CHANGE,) * 5
    assert latest(svc) == 2


def test_staging_from_the_rollout_tab(svc) -> None:
    save(svc, NAME, cheerful(svc), "cheerful wording", 1, OPS)
    missing = stage(svc, NAME, None, 50, ALL_SEGMENTS, OPS)
    assert "Pick a version." in missing[0] and missing[1:] == (NO_CHANGE,) * 6
    out = stage(svc, NAME, 2, 50, ALL_SEGMENTS, OPS)
    assert out[0] == "✅ staging → v2 for 50% of sessions"
    assert "- **staging** → v2 · 50% of sessions" in out[1]
    newest = out[4][0]
    assert newest[2:4] == [NAME, "staging"] and newest[5] == "v2" and newest[9] == "olivia"
    assert svc.staff.studio.rollout(NAME)["labels"]["staging"]["share"] == 0.5


# --------------------------------------------------------------------------- the API


def test_api_returns_the_error_dict_for_bad_input(svc) -> None:
    bad_json = prompt_save(svc, NAME, cheerful(svc), "{temperature", "hot", "1", OPS)
    assert bad_json["ok"] is False and bad_json["field"] is None
    assert bad_json["error"].startswith("params is not valid JSON")
    assert bad_json["hint"] == 'Example: {"temperature": 0.3}' and "problems" not in bad_json
    base = prompt_save(svc, NAME, cheerful(svc), "", "note", "three", OPS)
    assert base == {"ok": False, "error": "base version 'three' is not a number.",
                    "hint": "Pass the version your edit started from, e.g. 3.",
                    "field": None}
    unknown = prompt_save(svc, NAME, body_v1(svc).replace("{{profile}}", "{{profiel}}"),
                          "", "typo", "1", OPS)
    assert unknown["ok"] is False
    assert any("profiel" in p["message"] and p["level"] == "error"
               for p in unknown["problems"])
    missing = prompt_label(svc, NAME, 99, "staging", 0.5, "", "", False, OPS)
    assert missing["ok"] is False and missing["field"] == "version" and "99" in missing["error"]
    assert prompt(svc, NAME, "latest", OPS)["version"] == 1

    saved = prompt_save(svc, NAME, cheerful(svc), '{"temperature": 0.4}', "cheerful", "v1",
                        OPS)
    assert saved["ok"] is True and saved["version"] == 2 and saved["author"] == "olivia"
    assert saved["parameters"]["temperature"] == 0.4
    late = prompt_save(svc, NAME, cheerful(svc).replace("cheerful", "joyful"), "", "joyful",
                       "1", OPS)
    assert late["ok"] is False and late["conflict"]["latest_version"] == 2
    assert late["conflict"]["latest_author"] == "olivia"
    listed = {t["name"]: t for t in prompts(svc, OPS)}
    assert listed[NAME]["latest_version"] == 2


# --------------------------------------------------------------------------- the binding


def test_the_tab_binds_the_same_callbacks_for_gradio(svc) -> None:
    """What Gradio sees of a bound callback: no service parameter, the request injected
    by its type hint, guarded; calling it saves like the module function."""
    demo = create_staff_app(svc)
    fns = {f.api_name: f for f in demo.fns.values()}
    bound = fns["studio_save"].fn
    assert bound.__name__ == "save" and is_guarded(bound)
    inputs, *_ = helpers.special_args(bound, [NAME, cheerful(svc), "via the tab", 1],
                                      request=OPS)
    assert inputs[-1] is OPS
    assert bound(*inputs)[0].startswith(f"✅ Saved **v2** of {NAME} (via the tab)")
    for api_name in ("studio_run", "studio_rollback", "prompt_save", "prompts", "check"):
        fn = fns[api_name].fn
        assert is_guarded(fn) and "service" not in fn.__signature__.parameters
    streamed = fns["studio_run"].fn  # Gradio streams what inspect calls a generator
    assert streamed.__name__ == "run" and inspect.isgeneratorfunction(streamed)
