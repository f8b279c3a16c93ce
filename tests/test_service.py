"""The service with a scripted model and a real SQLite file."""

import pytest

from assistant.core.config import load_settings
from assistant.core.errors import InputError
from assistant.core.text import clean_message
from assistant.infra.llm import ScriptedModel
from assistant.service.assistant import AssistantService
from assistant.service.chat import CHAT_FALLBACK
from assistant.service.shopping import REPLACE


def test_chat_streams_saves_and_logs(service, scripted):
    sid = service.new_session()
    deltas = list(service.chat(sid, "  hello there \x07"))
    assert len(deltas) > 1
    assert "".join(deltas) == "Hello! How can I help you today?"
    msgs = service.history(sid)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "hello there"), ("assistant", "Hello! How can I help you today?")]
    # the model saw the rendered template: system + the user message
    sent = scripted.calls[0]
    assert sent[0].role == "system" and service.settings.shop_name in sent[0].content
    assert sent[-1].content == "hello there"
    [call] = service.store.llm_calls()
    assert (call.template_name, call.outcome, call.session_id) == ("chat", "ok", sid)
    assert call.template_version == "v1"
    assert call.ttft_ms is not None and call.latency_ms >= call.ttft_ms
    assert call.completion_tokens == 7 and call.prompt_tokens > 0


def test_history_goes_to_the_model_on_the_next_turn(service, scripted):
    sid = service.new_session()
    list(service.chat(sid, "first"))
    list(service.chat(sid, "second"))
    roles = [m.role for m in scripted.calls[1]]
    assert roles == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize("text", ["", "   \n\t ", "\x00\x01\x1f"])
def test_empty_messages_are_refused_and_nothing_saved(service, text):
    sid = service.new_session()
    with pytest.raises(InputError) as exc:
        list(service.chat(sid, text))
    assert "empty" in exc.value.message and exc.value.hint
    assert service.history(sid) == []


def test_huge_message_is_refused_with_its_length(service):
    sid = service.new_session()
    list(service.chat(sid, "keep me"))
    with pytest.raises(InputError) as exc:
        list(service.chat(sid, "x" * 20_000))
    assert "20,000" in exc.value.message and "4,000" in exc.value.message
    assert [m.content for m in service.history(sid)][0] == "keep me"  # nothing lost


def test_clean_message_keeps_newlines_and_unicode():
    assert clean_message("héllo\r\nwörld\u200b 🎁", limit=100) == "héllo\nwörld 🎁"


def test_retry_supersedes_last_reply(service):
    sid = service.new_session()
    list(service.chat(sid, "hi"))
    again = "".join(service.retry(sid))
    assert again == "Candles make a lovely gift."
    assert [m.content for m in service.history(sid)] == ["hi", again]


def test_retry_with_nothing_to_retry(service):
    with pytest.raises(InputError, match="nothing to retry"):
        list(service.retry(service.new_session()))


def test_stopping_keeps_partial_reply_marked_stopped(service):
    sid = service.new_session()
    stream = service.chat(sid, "hi")
    first = next(stream)
    stream.close()  # what Gradio does when the person presses Stop
    [user, reply] = service.history(sid)
    assert reply.status == "stopped" and reply.content == first.strip()
    assert service.store.llm_calls()[0].outcome == "stopped"


def test_model_failure_keeps_conversation_and_logs_error(settings):
    class Broken(ScriptedModel):
        def stream(self, messages, params):
            yield from ()
            raise ConnectionError("boom")

    svc = AssistantService.from_settings(settings, model=Broken())
    sid = svc.new_session()
    # no turn is left unanswered: the standard reply replaces the failed one
    assert list(svc.chat(sid, "hello")) == [REPLACE + CHAT_FALLBACK]
    history = svc.history(sid)
    assert [m.content for m in history] == ["hello", CHAT_FALLBACK]  # the message is kept
    assert history[1].status == "fallback"
    [call] = svc.store.llm_calls()
    assert call.outcome == "error" and call.error  # the failure is logged


def test_feedback_only_on_replies(service):
    sid = service.new_session()
    list(service.chat(sid, "hi"))
    service.feedback(sid, 1, liked=False)
    assert service.history(sid)[1].feedback == -1
    with pytest.raises(InputError):
        service.feedback(sid, 0, liked=True)


def test_resume_unknown_session_starts_new(service):
    sid, msgs = service.resume("does-not-exist")
    assert sid != "does-not-exist" and msgs == []
    list(service.chat(sid, "hi"))
    again, msgs = service.resume(sid)
    assert again == sid and len(msgs) == 2


def test_first_run_segments_come_from_the_configured_orders(tmp_path, staff_shop):
    """TAILOR_ORDERS set: the first-run build uses that file (as recommendations and the
    desk do), not the shipped one."""
    import pandas as pd

    from assistant.core.config import load_settings

    orders = staff_shop / "orders.csv"  # the first 60,000 rows of the shipped file
    settings = load_settings(data_dir=tmp_path / "data", llm_provider="scripted",
                             orders=orders)
    svc = AssistantService.from_settings(settings, model=ScriptedModel())
    summary = svc.ensure_segments()
    assert summary is not None and summary["source"] == str(orders)
    buyers = pd.read_csv(orders)["CustomerID"].dropna().nunique()
    assert summary["customers"] <= buyers < 4_338  # the shipped file has 4,338 buyers
    assert set(svc.segment_model().customers.index.astype(str)) <= set(
        pd.read_csv(orders)["CustomerID"].dropna().astype(int).astype(str))
    assert svc.ensure_segments() is None  # built once


STAFF_CALLS = {  # operation -> (role it needs, call with an actor)
    "desk_customer": ("agent", lambda s, who: s.desk_customer(who, "17850")),
    "start_draft": ("agent", lambda s, who: s.start_draft(agent=who, customer_id=None,
                                                          ticket="Where is my order?")),
    "save_final_draft": ("agent", lambda s, who: s.save_final_draft("d1", who, "Thanks.")),
    "rate_draft": ("agent", lambda s, who: s.rate_draft(who, "d1", True)),
    "segments_dashboard": ("ops", lambda s, who: s.segments_dashboard(who)),
    "staff_rebuild_segments": ("ops", lambda s, who: s.staff_rebuild_segments(
        who, "orders.csv")),
    "segment_of_customer": ("ops", lambda s, who: s.segment_of_customer(who, "17850")),
    "segment_from_answers": ("ops", lambda s, who: s.segment_from_answers(who, {})),
}


@pytest.mark.parametrize("operation", sorted(STAFF_CALLS))
def test_staff_operations_check_the_role_themselves(service, operation):
    """Roles are enforced at the service boundary: a front end that forgot to check still
    gets a refusal, before anything is read or written."""
    role, call = STAFF_CALLS[operation]
    service.users.add("alex", "correct-horse-42", "agent")
    service.users.add("olivia", "correct-horse-42", "ops")
    wrong = "olivia" if role == "agent" else "alex"
    with pytest.raises(InputError, match="Please sign in"):
        call(service, None)
    with pytest.raises(InputError, match="Please sign in"):
        call(service, "nobody")
    with pytest.raises(InputError, match=f"has the role {'ops' if role == 'agent' else 'agent'}"
                       f"; this needs {role}"):
        call(service, wrong)
    assert service.store.template_drafts("support_draft") == []  # nothing was written


def test_staff_operations_run_for_the_right_role(tmp_path, staff_shop):
    from tests.conftest import copy_shop

    data, orders = copy_shop(staff_shop, tmp_path / "shop")
    settings = load_settings(data_dir=data, llm_provider="scripted", orders=orders)
    svc = AssistantService.from_settings(settings, model=ScriptedModel(["Thanks, on it."]))
    svc.users.add("alex", "correct-horse-42", "agent")
    svc.users.add("ada", "correct-horse-42", "admin")
    assert svc.desk_customer("alex", "17850")["id"] == "17850"
    draft = svc.start_draft(agent="alex", customer_id="17850",
                            ticket="Where is my order?").collect()
    assert draft["text"] and svc.rate_draft("alex", draft["id"], True)
    assert svc.segment_of_customer("ada", "17850")["segment"]  # admin holds every role
