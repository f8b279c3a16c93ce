"""Cleaning text people typed: one cleaner, with parameters for what its callers keep.

Every caller strips the result, keeps tabs and newlines and turns ``\\r\\n`` into ``\\n``. They
differ in:

- ``normalize``: the Unicode form applied first (``"NFC"``: "e" + combining accent becomes
  "é"; ``None``: as typed);
- ``drop``: ``"invisible"`` removes the C0 control characters other than tab, newline and
  carriage return, DEL, zero-width characters and bidi marks and overrides (U+200B-U+200F,
  U+202A-U+202E, U+2060-U+2064) and, with ``drop_bom``, the byte order mark U+FEFF;
  ``"controls"`` removes every character of the Unicode categories Cc, Cf, Cs and Co
  (controls, format characters, surrogates, private use) except tab and newline;
- ``lone_cr``: a carriage return not followed by a newline becomes a newline, or is kept.

Callers: the chat message (``clean_message`` below: NFC, invisible, BOM and lone
CR kept; it also refuses empty and over-long messages), the support desk (the defaults) and
the questionnaire's answers (``questionnaire.parsing.clean_answer``: no normalization,
``"controls"``). ``tests/test_text.py`` pins each.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Literal

from assistant.core.errors import InputError

_INVISIBLE = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060-\u2064"
_INVISIBLE_CHARS = re.compile(f"[{_INVISIBLE}]")
_INVISIBLE_AND_BOM = re.compile(f"[{_INVISIBLE}\ufeff]")
_CONTROL_CATEGORIES = ("Cc", "Cf", "Cs", "Co")
_KEPT_CONTROLS = {"\n", "\t"}


def clean_text(text: str | None, *, normalize: Literal["NFC"] | None = "NFC",
               drop: Literal["invisible", "controls"] = "invisible", drop_bom: bool = True,
               lone_cr: Literal["newline", "keep"] = "newline") -> str:
    """``text`` (``None`` is empty) normalized, without the characters ``drop`` names,
    with ``\\n`` line ends (``lone_cr``) and stripped; see the module docstring."""
    text = text or ""
    if normalize:
        text = unicodedata.normalize(normalize, text)
    if drop == "controls":
        text = "".join(ch for ch in text if ch in _KEPT_CONTROLS
                       or unicodedata.category(ch) not in _CONTROL_CATEGORIES)
    else:
        text = (_INVISIBLE_AND_BOM if drop_bom else _INVISIBLE_CHARS).sub("", text)
    text = text.replace("\r\n", "\n")
    if lone_cr == "newline":
        text = text.replace("\r", "\n")
    return text.strip()


def clean_message(text: str | None, *, limit: int) -> str:
    """A chat message cleaned (NFC, invisible characters dropped, BOM and lone CR kept), or
    an ``InputError`` saying why it cannot be used (empty, longer than ``limit``)."""
    text = clean_text(text, drop_bom=False, lone_cr="keep")
    if not text:
        raise InputError("Your message is empty.", "Type a question or a few words, then send.")
    if len(text) > limit:
        raise InputError(
            f"Your message is {len(text):,} characters long; the limit is {limit:,}.",
            "Shorten it, or send the most important part first. Nothing was sent.",
        )
    return text


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~=])")
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|www)(?=[:.])|@")


def inert_markdown(text: str | None) -> str:
    """Text someone else typed, made safe to show in Markdown: HTML escaped, Markdown's
    special characters escaped (no link, image, heading or emphasis), and the spots where a
    renderer would auto-link a bare URL or email broken with an invisible joiner, so
    ``[x](https://evil)`` and ``![](https://evil/pixel.png)`` stay text. Line breaks kept."""
    out = html.escape(text or "", quote=False)
    out = _AUTOLINK.sub(lambda m: m.group(0) + "\u2060", out)
    out = _MD_SPECIAL.sub(r"\\\1", out)
    return out.replace("\n", "  \n")
