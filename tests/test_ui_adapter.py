from assistant.errors import ModelUnavailableError
from assistant.schemas import ChatMessage
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
