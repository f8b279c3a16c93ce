"""Checks of a written draft (``check_draft``): the grounding flags (``prompts/grounding.py``)
plus citation numbers that name no passage, internal words and markup."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from assistant.prompts.grounding import Facts, Verdict, check

_I = re.IGNORECASE
_CITATION = re.compile(r"\[(\d{1,3})\]")
_INTERNAL = re.compile(r"\bRFM\b|\bsegments?\b|\bcan'?t lose them\b|\bpotential loyalists\b"
                       r"|\bretention gesture\b|\bsystem (?:message|prompt)\b", _I)
_MARKUP = re.compile(r"<\s*/?\s*(?:script|iframe|object|embed|svg|style|meta|img|a|form|input)"
                     r"\b[^>]*>?|\bjavascript\s*:|\bon(?:error|load|click|mouseover)\s*="
                     r"|\bdocument\.cookie\b|\beval\s*\(", _I)


_NAME_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")  # as prompts/grounding.py splits names


def _catalog_in(text: str, facts: Facts) -> Facts:
    """Facts with only the catalog names whose every word occurs in the text (grounding
    compiles one pattern per name: thousands per draft otherwise). Nothing it would flag
    is dropped: a name it finds has all its words in the text."""
    low = text.lower()
    names = [n for n in facts.catalog if all(w in low for w in _NAME_WORD.findall(n.lower()))]
    return replace(facts, catalog=names)


def _flag(kind: str, text: str, start: int, end: int, reason: str) -> dict[str, Any]:
    return {"kind": kind, "text": text, "start": start, "end": end, "reason": reason}


def check_draft(text: str, facts: Facts, citations: int) -> list[dict[str, Any]]:
    """Grounding flags plus citation numbers that name no passage, internal words (segment
    names, RFM) and markup, as dicts sorted by position."""
    verdict: Verdict = check(text, _catalog_in(text, facts))
    flags = []
    for f in verdict.flags:
        reason = "this product is not among the customer's orders" if f.kind == "product" \
            else f.reason
        flags.append(_flag(f.kind, f.text, f.start, f.end, reason))
    for m in _CITATION.finditer(text):
        if not 1 <= int(m.group(1)) <= citations:
            flags.append(_flag("citation", m.group(0), m.start(), m.end(),
                               "no help passage has this number"))
    for m in _INTERNAL.finditer(text):
        flags.append(_flag("internal", m.group(0), m.start(), m.end(),
                           "internal wording the customer should not see"))
    for m in _MARKUP.finditer(text):
        flags.append(_flag("markup", m.group(0), m.start(), m.end(),
                           "HTML or script code in a reply; remove it"))
    return sorted(flags, key=lambda f: (f["start"], f["kind"]))
