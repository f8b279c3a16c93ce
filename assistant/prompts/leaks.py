"""The leak guard: generated text must not repeat the prompt's own (system) words. A leak is
``LEAK_NGRAM`` words in a row shared with the secret text, unless those words also occur in
a text the reply may quote (the policy, the data, the ticket). Used while streaming Agent
desk drafts (``support/desk.py``) and by the ``no_prompt_leak`` template test assertion
(``prompts/cases.py``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

LEAK_NGRAM = 6  # words in a row shared with the prompt's own words = a leak

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def _words(text: str) -> list[str]:
    return [m.group(0).lower() for m in _WORD.finditer(text)]


def _ngrams(words: list[str], n: int = LEAK_NGRAM) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class LeakGuard:
    """Streams text on while watching for the prompt: ``feed`` returns what is safe to show
    (everything but the last ``n - 1`` words, which might start a leak); once ``n`` words
    in a row of the secret appear, ``leaked`` is set and nothing more is released. n-grams
    that also occur in ``allowed`` texts (the policy, the data, the ticket, the fallback)
    are sayable and not counted."""

    def __init__(self, secret: str, allowed: Iterable[str] = (), n: int = LEAK_NGRAM) -> None:
        self.n = n
        allowed_grams: set[tuple[str, ...]] = set()
        for text in allowed:
            allowed_grams |= _ngrams(_words(text), n)
        self.secret = _ngrams(_words(secret), n) - allowed_grams
        self.text = ""
        self.released = 0
        self.leaked = False

    def _check(self, words: list[str]) -> bool:
        return any(tuple(words[i:i + self.n]) in self.secret
                   for i in range(len(words) - self.n + 1))

    def feed(self, delta: str) -> str:
        if self.leaked:
            return ""
        self.text += delta
        spans = list(_WORD.finditer(self.text))
        complete = len(spans)
        if spans and spans[-1].end() == len(self.text):
            complete -= 1  # the last word may go on in the next delta
        if self._check([m.group(0).lower() for m in spans[:complete]]):
            self.leaked = True
            return ""
        first_unsafe = complete - self.n + 1
        if first_unsafe <= 0:
            return ""
        end = spans[first_unsafe].start() if first_unsafe < len(spans) else len(self.text)
        return self._release(end)

    def finish(self) -> str:
        if self.leaked or self._check(_words(self.text)):
            self.leaked = True
            return ""
        return self._release(len(self.text))

    def _release(self, end: int) -> str:
        if end <= self.released:
            return ""
        out, self.released = self.text[self.released:end], end
        return out


def leaks(text: str, secret: str, allowed: Iterable[str] = (), n: int = LEAK_NGRAM) -> bool:
    guard = LeakGuard(secret, allowed, n)
    guard.feed(text)
    guard.finish()
    return guard.leaked
