from assistant.core.errors import ModelUnavailableError
from assistant.core.schemas import ChatMessage
from assistant.ui.chat import error_bubble, feedback_values, text_of, to_chatbot


def _msg(i, role, content, **kw):
    return ChatMessage(id=i, session_id="s", role=role, content=content, created_at="t", **kw)


def test_to_chatbot_marks_stopped_replies():
    out = to_chatbot([_msg(1, "user", "hi"), _msg(2, "assistant", "par", status="stopped")])
    assert out[0] == {"role": "user", "content": "hi"}
    assert out[1]["content"].startswith("par") and "stopped" in out[1]["content"]


def test_feedback_values_one_per_reply():
    msgs = [_msg(1, "user", "a"), _msg(2, "assistant", "b", feedback=1),
            _msg(3, "user", "c"), _msg(4, "assistant", "d")]
    assert feedback_values(msgs) == ["Like", None]


def test_error_bubble_has_message_and_hint():
    b = error_bubble(ModelUnavailableError("Server down.", "Press Retry."))
    assert b["metadata"]["title"] == "⚠️ Server down." and b["content"] == "Press Retry."


def test_text_of_gradio6_parts():
    assert text_of([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]) == "ab"
    assert text_of("plain") == "plain"


def test_with_options_only_on_last_assistant_message():
    from assistant.ui.chat import with_options

    hist = [{"role": "assistant", "content": "q1"}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": "q2"}]
    out = with_options(hist, ["Yes", "No"])
    assert out[-1]["options"] == [{"value": "Yes", "label": "Yes"}, {"value": "No", "label": "No"}]
    assert "options" not in out[0] and "options" not in hist[-1]  # input left untouched
    assert with_options(hist[:2], ["x"])[-1] == {"role": "user", "content": "a"}


def test_card_markdown_facts_sources_segment_and_empty_state():
    from assistant.ui.chat import card_markdown

    empty = card_markdown({"facts": [], "segment": None}, {"answered": 0, "total": 8})
    assert "Nothing yet" in empty and "0 of 8 answered" in empty
    card = card_markdown({
        "facts": [{"question": "budget", "answer": "£40", "source": "said"},
                  {"question": "region", "answer": "Europe", "source": "edited"}],
        "segment": {"segment": "Champions", "probability": 0.734,
                    "reasons": ["said last order: within the last month"]},
        "meaning": "You're one of our most loyal customers: thank you!"})
    assert "**budget**: £40 · *you said*" in card and "*you changed*" in card
    assert "*You're one of our most loyal customers: thank you!*" in card
    # the staff's segment name and its reasons are not for the customer
    assert "Champions" not in card and "73%" not in card and "within the last" not in card
    assert "Champions" not in card_markdown({"facts": [], "segment": {"segment": "Champions"},
                                             "meaning": None})
