"""The text cleaner (``core/text.py``) and what each of its three callers keeps and drops:
the chat message (``clean_message``, used by the service's chat and guided turns), the
support desk (tickets, drafts, final texts, reasons) and the questionnaire's answers. Each
caller's rules are pinned here, case by case, so a change to the shared cleaner cannot
change one of them unnoticed."""

from __future__ import annotations

import pytest

from assistant.core.errors import InputError
from assistant.core.text import clean_message
from assistant.questionnaire import parsing
from assistant.support import desk


def chat(text: str | None) -> str:
    return clean_message(text, limit=100)


def desk_clean(text: str | None) -> str:
    return desk.clean_text(text)  # the cleaner the desk calls


def answer(text: str) -> str:
    return parsing.clean_answer(text)  # the cleaner the questionnaire calls


# (input, chat message, desk, questionnaire answer)
CASES = [
    pytest.param("  hello there \x07", "hello there", "hello there", "hello there",
                 id="bell-and-outer-spaces"),
    pytest.param("héllo\r\nwörld\u200b 🎁", "héllo\nwörld 🎁", "héllo\nwörld 🎁",
                 "héllo\nwörld 🎁", id="crlf-zero-width-emoji"),
    pytest.param("a\tb\nc", "a\tb\nc", "a\tb\nc", "a\tb\nc", id="tab-and-newline-kept"),
    pytest.param(" a\x1b[31m\nb\x7f ", "a[31m\nb", "a[31m\nb", "a[31m\nb",
                 id="escape-and-delete"),
    pytest.param("a\x0bb\x0cc\x00d", "abcd", "abcd", "abcd", id="c0-controls"),
    pytest.param("a\rb", "a\rb", "a\nb", "ab", id="lone-carriage-return"),
    pytest.param("a\ufeffb", "a\ufeffb", "ab", "ab", id="byte-order-mark"),
    pytest.param("e\u0301", "\u00e9", "\u00e9", "e\u0301", id="nfc-composition"),
    pytest.param("\uff21\u00bd", "\uff21\u00bd", "\uff21\u00bd", "\uff21\u00bd",
                 id="no-nfkc"),
    pytest.param("a\u202eb\u200fc\u2060d", "abcd", "abcd", "abcd", id="bidi-and-joiners"),
    pytest.param("a\u2066b", "a\u2066b", "a\u2066b", "ab", id="bidi-isolate"),
    pytest.param("a\u00adb", "a\u00adb", "a\u00adb", "ab", id="soft-hyphen"),
    pytest.param("a\x85b", "a\x85b", "a\x85b", "ab", id="c1-control"),
    pytest.param("a\ue000b", "a\ue000b", "a\ue000b", "ab", id="private-use"),
    pytest.param("\u200b a \u200b", "a", "a", "a", id="strip-after-removal"),
]


@pytest.mark.parametrize(("raw", "as_chat", "as_desk", "as_answer"), CASES)
def test_each_caller_keeps_its_rules(raw: str, as_chat: str, as_desk: str,
                                     as_answer: str) -> None:
    assert chat(raw) == as_chat
    assert desk_clean(raw) == as_desk
    assert answer(raw) == as_answer


def test_empty_and_missing_text() -> None:
    assert desk_clean(None) == ""
    assert desk_clean(" \u200b\x00 ") == ""
    assert answer(" \u200b\x00 ") == ""
    assert answer(42) == "42"  # type: ignore[arg-type]
    for empty in (None, "", "  \u200b\x07 \n"):
        with pytest.raises(InputError, match="Your message is empty") as err:
            chat(empty)
        assert err.value.hint == "Type a question or a few words, then send."


def test_chat_message_limit_counts_the_cleaned_text() -> None:
    assert clean_message("x" * 10 + "\u200b" * 5, limit=10) == "x" * 10
    assert clean_message(" " + "x" * 10 + " ", limit=10) == "x" * 10
    with pytest.raises(InputError) as err:
        clean_message("x" * 12_345, limit=4_000)
    assert err.value.message == "Your message is 12,345 characters long; the limit is 4,000."
    assert err.value.hint == ("Shorten it, or send the most important part first. "
                              "Nothing was sent.")


def test_someone_elses_text_is_inert_in_markdown() -> None:
    """Issue 15: what a customer typed, shown to staff in Markdown, has no live link, image,
    HTML or formatting (the browser check is in tests/test_browser.py, agent desk)."""
    from assistant.core.text import inert_markdown

    out = inert_markdown("[x](https://evil.example) ![](http://e.vil/p.png) <img src=x> "
                         "www.evil.example jo@evil.example # Title *em*\nnext")
    assert "<img" not in out and "&lt;img src\\=x&gt;" in out
    assert "\\[x\\]\\(" in out and "\\!\\[\\]" in out and "\\# Title \\*em\\*" in out
    assert "https\u2060:" in out and "www\u2060\\." in out and "jo@\u2060evil" in out
    assert out.endswith("  \nnext")
