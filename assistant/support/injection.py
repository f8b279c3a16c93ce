"""A ticket's text: ``detect_injection``, the scan for phrases that try to steer the model
(plain, spaced-out, leetspeak, ROT13, reversed and base64-encoded)."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

from assistant.core.text import clean_text

_I = re.IGNORECASE
_VERBS_IGNORE = r"(?:ignore|disregard|forget|override|overrule|bypass)"
_THINGS = (r"(?:instructions?|rules|prompts?|guidelines|polic(?:y|ies)|directions|directives"
           r"|constraints|restrictions|programming)")
_INJECTION: list[tuple[str, re.Pattern[str]]] = [
    ("ignore instructions", re.compile(
        rf"(?<!not )(?<!n't )\b{_VERBS_IGNORE}\b[^.!?\n]{{0,40}}\b{_THINGS}\b"
        rf"|\b{_VERBS_IGNORE}\s+(?:all\s+|everything\s+)?(?:the\s+)?(?:above|previous|prior)\b",
        _I)),
    ("system prompt", re.compile(
        r"\bsystem\s*[- ]?prompt\b|\b(?:initial|hidden|secret|system)\s+"
        r"(?:prompt|instructions?|rules|configuration)\b", _I)),
    ("reveal instructions", re.compile(
        r"\b(?:print|show|reveal|repeat|output|display|leak|share|dump|summari[sz]e|list|"
        r"recite|tell\s+me|what\s+(?:are|were))\b[^.!?\n]{0,30}\byour\s+(?:own\s+)?"
        r"(?:instructions|prompt|configuration|directives)\b"
        r"|\b(?:print|reveal|repeat|output|leak|dump|recite)\b[^.!?\n]{0,30}\byour\s+"
        r"(?:own\s+)?(?:rules|guidelines)\b"
        r"|\b(?:repeat|print|output)\s+(?:everything|all|the\s+(?:text|words|lines|message"
        r"|instructions))\s+(?:above|before)\b", _I)),
    ("role-play", re.compile(
        r"\byou\s+are\s+now\s+(?:an?|my|in|the|free|unrestricted|going\s+to)\b"
        r"|\byou\s+are\s+no\s+longer\s+(?:an?|bound|restricted|limited)\b"
        r"|\bpretend\s+(?:to\s+be|you(?:'re|\s+are))\b|\brole[- ]?play\b"
        r"|\bact\s+as\s+(?:an?|my|the)\b|\blet'?s\s+play\s+a\s+game\b"
        r"|\bimagine\s+(?:that\s+)?you\s+are\b|\bstay\s+in\s+character\b"
        r"|\bfrom\s+now\s+on,?\s+(?:you|your)\b|\byour\s+new\s+(?:role|task|goal)\b", _I)),
    ("developer mode", re.compile(
        r"\b(?:developer|dev|god|admin|debug|unrestricted|jailbreak)\s+mode\b|\bjailbreak\b"
        r"|(?-i:\bDAN\b)", _I)),
    ("new instructions", re.compile(
        r"\b(?:new|updated|additional|real)\s+(?:instructions|rules|directives)\b"
        r"|\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+)?"
        r"(?:ai|assistant|model|bot|llm|chatbot|system)\b", _I)),
    ("approve a refund", re.compile(
        r"\b(?:approve|authori[sz]e|grant)\b[^.!?\n]{0,30}\b(?:full|complete|total|entire"
        r"|100\s?%|immediate)\s+(?:refund|reimbursement|compensation)\b", _I)),
    ("steer the reply", re.compile(
        r"\b(?:begin|start|end)\s+your\s+(?:reply|response|answer|message)\s+with\b"
        r"|\byour\s+(?:reply|response|answer)\s+must\b"
        r"|\b(?:say|write|reply|respond|output)\s+(?:only\s+)?exactly\b", _I)),
    ("fake role line", re.compile(
        r"^\s*(?:#+\s*|\[)?(?:system|assistant|developer|admin|ai)\s*(?:\]|:|>)"
        r"|\[/?(?:system|inst)\]|<\|?(?:im_start|im_end|system|endoftext|eot_id)\|?>"
        r"|<</?SYS>>|\"role\"\s*:\s*\"(?:system|assistant|developer)\"", _I | re.MULTILINE)),
    ("encoded text", re.compile(r"\b(?:base64|rot13|rot-13)\b", _I)),
    ("html/script", re.compile(
        r"<\s*/?\s*(?:script|iframe|object|embed|svg|style|meta)\b|\bjavascript\s*:"
        r"|\bon(?:error|load|click|mouseover)\s*=", _I)),
    # other languages: "ignore the (previous) instructions", "system prompt"
    ("ignore instructions (other language)", re.compile(
        r"(?<!not )(?<!n't )\b(?:ignore|ignora\w*|ignorez|ignorer|ignorier\w*|olvida\w*"
        r"|oubliez|oublie|vergiss\w*|negeer\w*|esque[cç]a\w*)\b[^.!?\n]{0,40}\b(?:instrucci\w*|instructions?"
        r"|anweisung\w*|istruzion\w*|instru[cç][õo]\w*|instructies|regeln|reglas|r[eè]gles"
        r"|regole|regras)"
        r"|(?:игнориру\w*|забудь\w*)[^.!?\n]{0,40}(?:инструкци\w*|правил\w*)"
        r"|(?:忽略|无视|忘记|忽視|無視)[^。！？\n]{0,20}(?:指令|说明|指示|规则|提示)"
        r"|\b(?:prompt\s+(?:del|di)\s+sistema|invite\s+syst[eè]me|systemprompt"
        r"|prompt\s+do\s+sistema)\b|системн\w+\s+(?:промпт|подсказк\w*)|系统提示", _I)),
]
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s"})
_SPACED = re.compile(r"\b(?:\w[ ._*-]){3,}\w\b")
_B64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def _decoded_base64(text: str) -> list[str]:
    out = []
    for m in _B64.finditer(text):
        raw = m.group(0)
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_")
            decoded = data.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded and sum(c.isprintable() or c.isspace() for c in decoded) / len(decoded) > 0.9:
            out.append(decoded)
    return out


# Words one of which a pattern cannot match without (lower-cased substrings): a pattern runs
# only on a text holding one of its words, so a long ticket costs a few substring searches
# per pattern instead of a regex pass; tests/test_support.py checks the corpus reads the
# same with and without this filter.
_NEEDS: dict[str, tuple[str, ...]] = {
    "ignore instructions": ("ignor", "disregard", "forget", "overrid", "overrul", "bypass"),
    "system prompt": ("prompt", "instruction", "rules", "configuration"),
    "reveal instructions": ("your", "above", "before"),
    "role-play": ("you", "pretend", "role", "act", "let", "imagine", "character"),
    "developer mode": ("mode", "jailbreak", "dan"),
    "new instructions": ("instruction", "rules", "directive", "note", "message"),
    "approve a refund": ("refund", "reimbursement", "compensation"),
    "steer the reply": ("your", "exactly"),
    "encoded text": ("base64", "rot13", "rot-13"),
    "html/script": ("script", "iframe", "object", "embed", "svg", "style", "meta",
                    "javascript", "onerror", "onload", "onclick", "onmouseover"),
    "ignore instructions (other language)": (
        "ignor", "olvid", "oubli", "vergiss", "negeer", "esque", "sistema", "syst", "игнор",
        "забуд", "системн", "忽略", "无视", "忘记", "忽視", "無視", "系统提示"),
}
_SPACED_PART = re.compile(r"[ ._*-]")
_WORD = re.compile(r"[\w@$]+")


def _scan(text: str, prefilter: bool = True) -> list[str]:
    found = []
    # "İ" lower-cases to two characters; the regex's case folding reads it as "i"
    lower = text.lower().replace("i\u0307", "i")
    for label, pattern in _INJECTION:
        needs = _NEEDS.get(label)
        if prefilter and needs and not any(word in lower for word in needs):
            continue
        for m in pattern.finditer(text):
            found.append(f"{label}: {m.group(0).strip()[:80]}")
            break
    return found


def _read_leet(word: str) -> str:
    if any(c.isdigit() for c in word) and any(c.isalpha() for c in word):
        return word.translate(_LEET)
    return word


def _unobfuscate(text: str) -> str:
    """Spaced-out letters joined ("I G N O R E" -> "IGNORE") and leetspeak read as letters
    ("1gn0r3" -> "ignore"). Linear in the text: each word is looked at once."""
    text = _SPACED.sub(lambda m: _SPACED_PART.sub("", m.group(0)), text)
    return _WORD.sub(lambda m: _read_leet(m.group(0)), text)


def detect_injection(ticket: str, *, prefilter: bool = True) -> list[str]:
    """Phrases in a ticket that try to steer the model ("label: matched text"); empty when
    none. Checks the text (NFKC), the text with spaced-out letters and leetspeak undone, its
    ROT13, the text reversed and any base64 in it."""
    text = unicodedata.normalize("NFKC", clean_text(ticket))
    found = _scan(text, prefilter)
    variants = {"obfuscated": _unobfuscate(text), "rot13": codecs.decode(text, "rot13"),
                "reversed": text[::-1]}
    variants |= {f"base64 #{i + 1}": d for i, d in enumerate(_decoded_base64(text))}
    for name, variant in variants.items():
        if variant == text:
            continue
        found += [f"{p} ({name})" for p in _scan(variant, prefilter)
                  if not p.startswith(("html/script", "encoded text", "fake role line"))
                  and p not in found]
    return list(dict.fromkeys(found))[:10]
