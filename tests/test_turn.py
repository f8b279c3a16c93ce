"""One path for a message (issue 13): ``AssistantService.turn`` and the chat tab's callbacks,
called without a browser, on real segments, orders, SQLite and Chroma (the first 60,000
rows of the shipped data) with a scripted model."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest

from assistant.core.config import REPO_ROOT, load_settings
from assistant.core.errors import InputError
from assistant.infra.llm import ScriptedModel
from assistant.service.assistant import AssistantService
from assistant.service.chat import PICKING
from assistant.service.results import TurnUpdate
from assistant.ui import app as chat_ui

ANSWERS = {"buyer_type": "for myself", "interests": "candles and christmas",
           "budget": "about 5 pounds", "region": "UK"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    data = tmp_path_factory.mktemp("turndata")
    orders = data / "orders.csv"
    pd.read_csv(REPO_ROOT / "data" / "online_retail.csv.gz", nrows=60_000).to_csv(
        orders, index=False)
    svc = make(data, orders)
    svc.rebuild_segments(orders)
    svc.recommender()
    return data, orders


def make(data, orders, replies=None) -> AssistantService:
    settings = load_settings(data_dir=data, llm_provider="scripted", orders=orders)
    return AssistantService.from_settings(settings, model=ScriptedModel(replies))


def opened(svc: AssistantService) -> str:
    """A session as the browser opens it: the first question asked and saved."""
    sid = svc.new_session()
    svc.guided_view(sid)
    return sid


def past_opening(svc: AssistantService, sid: str) -> None:
    """Skip the opening question (in their own words) as a person would in the chat box."""
    assert svc.pending_question(sid).id == "looking_for"
    list(svc.turn(sid, "skip"))


def first_choice(svc: AssistantService, sid: str) -> str:
    return svc.pending_question(sid).quick_replies[0]


def answer_until_summary(svc: AssistantService, sid: str) -> list[TurnUpdate]:
    """Answer through ``turn`` (as the chat box does) until the summary shows."""
    last: list[TurnUpdate] = []
    for _ in range(15):
        question = svc.pending_question(sid)
        if question.done:
            return last
        text = ANSWERS.get(question.id) or (question.quick_replies or ["skip"])[0]
        last = list(svc.turn(sid, text))
    raise AssertionError("the questionnaire did not reach its summary")


def test_an_answer_is_one_typed_update_with_card_and_quick_replies(shop):
    svc = make(*shop)
    sid = opened(svc)
    past_opening(svc, sid)
    question = svc.pending_question(sid)
    [update] = list(svc.turn(sid, question.quick_replies[0]))
    assert update.done and update.guided and update.session_id == sid
    assert update.replies[0].startswith("Got it")
    assert update.quick_replies[-1] == svc.JUST_CHAT
    assert update.card is not None and update.card.facts[0].question == question.id
    # the skipped opening and this answer
    assert update.progress is not None and update.progress.answered == 2
    assert [(m.role, m.content) for m in svc.history(sid)][3:] == [
        ("user", question.quick_replies[0]), ("assistant", update.replies[0])]


def test_a_turn_reads_the_state_once_and_ranks_once(shop, monkeypatch):
    """The cost issue 13 measured: one read of the questionnaire state per answer, and the
    confirming answer ranks once for the cards and their message together."""
    svc = make(*shop)
    sid = opened(svc)
    list(svc.turn(sid, first_choice(svc, sid)))
    reads: list[str] = []
    load = svc.store.load_questionnaire
    monkeypatch.setattr(svc.store, "load_questionnaire",
                        lambda s: reads.append(s) or load(s))
    list(svc.turn(sid, first_choice(svc, sid)))
    assert reads == [sid, sid]  # pending_question's, then the turn's one read

    answer_until_summary(svc, sid)
    ranked: list[object] = []
    recommender = svc.recommender()
    rank = recommender.recommend
    monkeypatch.setattr(recommender, "recommend",
                        lambda *a, **k: ranked.append(a) or rank(*a, **k))
    reads.clear()
    updates = list(svc.turn(sid, "confirm"))
    assert len(ranked) == 1 and reads == [sid]
    assert updates[1].working == PICKING and updates[1].items is None
    final = updates[-1]
    assert final.done and final.items and len(final.replies) == 2
    assert final.replies[0].startswith("Thanks! That's everything I need.")
    assert final.items == svc.recommend(sid).items  # the same list the cards show
    assert svc.history(sid)[-1].content == final.replies[1]


def test_a_refused_message_saves_nothing(shop):
    svc = make(*shop)
    sid = svc.new_session()
    with pytest.raises(InputError, match="empty"):
        list(svc.turn(sid, "  \x00 "))
    assert svc.history(sid) == []
    with pytest.raises(InputError, match="Unknown session"):
        list(svc.turn("no-such-session", "hello"))


def test_after_just_chat_the_model_streams_and_the_reply_grows(shop):
    svc = make(*shop, replies=["Candles make a lovely gift."])
    sid = svc.new_session()
    [left] = list(svc.turn(sid, "Just chat"))
    assert left.replies[0].startswith("Sure, let's just chat") and not left.quick_replies
    updates = list(svc.turn(sid, "what do you sell?"))
    texts = [u.text for u in updates]
    assert len(texts) > 2 and all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
    assert updates[-1].done and texts[-1] == "Candles make a lovely gift."
    assert not updates[-1].guided and updates[-1].card is None
    assert svc.history(sid)[-1].content == "Candles make a lovely gift."


def test_the_browser_the_api_and_the_terminal_get_the_same_reply(shop):
    """The chat box (respond), /chat (api_chat) and ``assistant chat`` (service.respond)
    all go through ``turn``: the same answer in three sessions gives the same text."""
    svc = make(*shop)
    sids = [opened(svc) for _ in range(3)]
    for sid in sids:
        past_opening(svc, sid)
    text = first_choice(svc, sids[0])
    *_, (chat, card, _items) = chat_ui.respond(svc, text, sids[0], [])
    *_, (api_text, api_sid) = chat_ui.api_chat(svc, text, sids[1])
    terminal = "".join(svc.respond(sids[2], text))
    assert chat[-1]["content"] == api_text == terminal
    assert api_text.startswith("Got it") and api_sid == sids[1]
    assert [o["value"] for o in chat[-1]["options"]][-1] == svc.JUST_CHAT
    assert "2 of" in card and "Nothing yet" not in card  # the skipped opening and this answer


def test_chat_callbacks_without_a_browser(shop):
    svc = make(*shop)
    box, history, sid, saved, pending = chat_ui.accept(svc, "   ", None, [])
    assert pending == "" and history == [] and sid == saved  # refused: nothing shown
    sid = opened(svc)
    past_opening(svc, sid)
    text = first_choice(svc, sid)
    box, history, sid, saved, pending = chat_ui.accept(svc, f" {text} ", sid, [])
    assert pending == text and history == [{"role": "user", "content": text}]
    *_, (chat, _card, _items) = chat_ui.respond(svc, pending, sid, history)
    assert chat[0] == history[0] and chat[-1]["content"].startswith("Got it")

    clicked = SimpleNamespace(value=first_choice(svc, sid))
    *_, (chat, card, _items) = chat_ui.pick(svc, sid, chat, clicked)
    # the skipped opening and two answers
    assert "3 of" in card and chat[-2] == {"role": "user", "content": clicked.value}

    chat, card = chat_ui.edit_fact(svc, sid, "region", "Europe")
    assert "**region**: Europe" in card
    before = svc.history(sid)
    chat_ui.identify(svc, sid, "no-such-customer", "536365", None)  # a warning; no change
    assert svc.history(sid) == before and svc.profile(sid).customer_id is None

    endpoint = chat_ui.api(chat_ui.profile)
    out, same = endpoint(svc, sid)
    assert same == sid and "region" in {f["question"] for f in out["facts"]}
    # the public card says what the segment means for the person, never the staff's name
    staff = svc.profile(sid)
    assert "segment" not in out and staff.segment is not None
    # ... once it rests on how they shop (here: how often they order), not before
    assert out["meaning"] is None
    chat_ui.edit_fact(svc, sid, "order_frequency", "a few times a year")
    out, _ = endpoint(svc, sid)
    staff = svc.profile(sid)
    assert out["meaning"] == svc.parts.meanings.for_customer(staff.segment_name)
    with pytest.raises(gr.Error, match="There is no question 'nope'"):
        chat_ui.api(chat_ui.answer)(svc, "nope", "x", sid)
