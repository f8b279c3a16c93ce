"""The help base: Bitext customer-support responses as help passages in Chroma.

Build (``build_helpbase``):

1. **load** the Bitext CSV (``data/bitext-support/bitext_customer_support.csv.gz``);
2. **fill** every ``{{Placeholder}}`` from ``data/shop.yaml`` (see its header): shop facts
   become the shop's text; the customer's own data (order number, invoice number, name)
   becomes a slot marker such as ``[order number]``, listed in ``Passage.slots`` for the
   drafting code (``fill_slots``); site labels become their label text; a response that uses
   an ``omit`` placeholder (a policy detail the shop has not written) or one of its
   ``exclude_phrases`` (claims the shop does not make, e.g. "24/7") is left out. A
   placeholder that the file does not list, or a fact whose shop field is empty, stops the
   build with the placeholder names. The customer's data that Bitext wrote into a response
   as plain text (the order id or name from the paired question, any money amount) becomes
   a slot too; a response that still holds an id-like number (5+ digits) is left out;
3. **select** per intent the ``per_intent`` most representative responses: nearest the
   intent's TF-IDF centroid, skipping near-duplicates (cosine > ``max_similarity`` to one
   already kept), so ~1000 near-identical texts become a few dozen distinct passages;
4. **index** them in the Chroma collection ``help-passages`` (metadata: intent, category,
   title, slots, build hash). A build whose inputs (data bytes, shop file, parameters,
   embedding model) hash to what is already indexed is skipped.

``HelpBase.search(text, k, intent=None)`` returns ``Passage`` objects, best first.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from assistant.core.config import REPO_ROOT, Settings
from assistant.core.errors import AssistantError, ConfigError, InputError
from assistant.core.yamlfile import line_of, read_config_file
from assistant.orders.tables import file_sha256

DEFAULT_CSV = REPO_ROOT / "data" / "bitext-support" / "bitext_customer_support.csv.gz"
DEFAULT_SHOP = REPO_ROOT / "data" / "shop.yaml"
COLLECTION = "help-passages"
BUILD_VERSION = 3  # bump when the selection or the passage text changes
REQUIRED_COLUMNS = ("instruction", "intent", "category", "response")
MAX_QUERY_CHARS = 2000  # MiniLM reads 256 tokens; a 30,000-character ticket is cut here
MAX_K = 50
LEAD_CHARS = 300  # the opening embedded per passage (see ``lead``)

Progress = Callable[[str, float], None]
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_TOKEN = re.compile(r"\{\{(.*?)\}\}|\[([^\[\]{}\n]{1,80})\]", re.S)  # {{name}} or [name]
_BRACKETED_PLACEHOLDER = re.compile(r"\[(\{\{[^{}]*\}\})\]")
_MARKER = re.compile(r"\x00([a-z ]+)\x00")  # a slot placed before filling, "[slot]" after
_SLOT = re.compile(r"\[([a-z][a-z ]*[a-z])\]")
# customer data written as plain text (entity type in the CSV -> slot)
_ENTITY_SLOTS = {"order_id": "order number", "invoice_id": "invoice number",
                 "person_name": "name"}
# a money amount in a response is the customer's (Bitext copies it from the question)
_AMOUNT = re.compile(r"[$€£]\s?\d[\d,]*(?:\.\d\d)?|\b\d[\d,]*(?:\.\d\d)?\s?"
                     r"(?:USD|EUR|GBP|dollars|euros|pounds)\b")
# what still marks a response as one customer's case after slots are placed
_SPECIFIC = re.compile(r"\d{5,}")


# --------------------------------------------------------------------------- shop file
class ShopFile(BaseModel):
    """``data/shop.yaml``: see the comment at its top."""

    model_config = ConfigDict(extra="forbid")

    shop: dict[str, StrictStr | None]
    facts: dict[str, StrictStr] = {}
    customer: dict[str, StrictStr] = {}
    labels: dict[str, StrictStr] = {}
    omit: list[StrictStr] = []
    exclude_phrases: list[StrictStr] = []


@dataclass(frozen=True)
class Filled:
    """One response with its placeholders resolved."""

    text: str
    slots: tuple[str, ...] = ()
    omitted_by: tuple[str, ...] = ()  # omit-placeholders it uses: leave it out
    unresolved: tuple[str, ...] = ()  # [bracketed text] that names no placeholder: leave it out


@dataclass
class ShopPlaceholders:
    """Resolves Bitext placeholders from a shop file; names are matched ignoring case."""

    shop: dict[str, str]
    values: dict[str, str]  # placeholder -> final text (facts and labels)
    slots: dict[str, str]  # placeholder -> slot name (customer data)
    omit: frozenset[str]
    exclude_phrases: tuple[str, ...] = ()
    source: str = "shop settings"
    digest: str = ""

    def kind(self, name: str) -> str | None:
        key = self._key(name)
        if key in self.values:
            return "value"
        if key in self.slots:
            return "slot"
        if key in self.omit:
            return "omit"
        return None

    def check(self, names: Iterable[str]) -> None:
        """ConfigError naming every placeholder that has no value."""
        unknown = sorted({n for n in names if self.kind(n) is None})
        if unknown:
            shown = ", ".join(f"{{{{{n}}}}}" for n in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            raise ConfigError(
                f"{len(unknown)} placeholder(s) have no value in {self.source}: {shown}{more}.",
                "Add each under facts:, customer:, labels: or omit: (see the file's header).",
            )

    def fill(self, text: str) -> Filled:
        """Replace every ``{{placeholder}}``; ConfigError names the ones without a value.

        Bitext also left some placeholders in square brackets ("[Customer Support Phone
        Number]"): a bracketed text that names a listed placeholder is filled the same way;
        any other bracketed text is reported in ``unresolved``."""
        text = _BRACKETED_PLACEHOLDER.sub(r"\1", text)  # "[{{Website Name}}]"
        self.check(m.group(1) for m in _PLACEHOLDER.finditer(text))
        slots: list[str] = []
        omitted: list[str] = []
        unresolved: list[str] = []

        def replace(match: re.Match[str]) -> str:
            name = match.group(1) if match.group(1) is not None else match.group(2)
            key = self._key(name)
            if key in self.values:
                return self.values[key]
            if key in self.slots:
                slots.append(self.slots[key])
                return f"[{self.slots[key]}]"
            (omitted if key in self.omit else unresolved).append(name)
            return match.group(0)

        out = _TOKEN.sub(replace, text)
        return Filled(out, *(tuple(dict.fromkeys(x)) for x in (slots, omitted, unresolved)))

    def _key(self, name: str) -> str:
        return name.casefold()


def load_shop(path: Path | str | None = None) -> ShopPlaceholders:
    """Read and check ``data/shop.yaml``; every problem is a ConfigError naming file and line."""
    path = Path(path) if path is not None else DEFAULT_SHOP
    data, root = read_config_file(path, what="Shop settings", default="data/shop.yaml")
    try:
        spec = ShopFile.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = line_of(root, loc[:2])
        where = f"{path}:{line}" if line else str(path)
        field_name = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "string_type":
            msg += " (quote it: YAML reads 30 or 9:00 as numbers)"
        raise ConfigError(f"Shop settings {where}: {field_name}: {msg}.",
                          "Fix that entry; the layout is documented at the top of the file.") \
            from None
    return _compile_shop(spec, path, root)


def _compile_shop(spec: ShopFile, path: Path, root: Any) -> ShopPlaceholders:
    shop = {k: (v or "").strip() for k, v in spec.shop.items()}
    seen: dict[str, str] = {}
    for section, names in (("facts", spec.facts), ("customer", spec.customer),
                           ("labels", spec.labels), ("omit", spec.omit)):
        for name in names:
            key = name.casefold()
            if key in seen:
                line = line_of(root, (section, name))
                raise ConfigError(
                    f"Shop settings {path}:{line}: placeholder '{name}' is listed twice "
                    f"(also under {seen[key]}:); names are matched ignoring case.",
                    "Keep one entry per placeholder.")
            seen[key] = section
    values = {name.casefold(): _fact_text(name, tpl, shop, path)
              for name, tpl in spec.facts.items()}
    values.update({name.casefold(): label for name, label in spec.labels.items()})
    return ShopPlaceholders(
        shop=shop, values=values,
        slots={name.casefold(): slot.strip().lower() for name, slot in spec.customer.items()},
        omit=frozenset(n.casefold() for n in spec.omit),
        exclude_phrases=tuple(x.casefold() for x in spec.exclude_phrases if x.strip()),
        source=str(path),
        digest=hashlib.sha256(json.dumps(spec.model_dump(), sort_keys=True).encode())
        .hexdigest())


def _fact_text(name: str, template: str, shop: dict[str, str], path: Path) -> str:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ConfigError(f"Shop settings {path}: facts: '{name}': {exc}.",
                          "Write shop fields as {field}; no other braces.") from None
    missing = [f for f in fields if not shop.get(f)]
    if missing:
        raise ConfigError(
            f"Shop settings {path}: placeholder {{{{{name}}}}} needs shop field(s) "
            f"{', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            "missing or empty.",
            f"Set {missing[0]} under shop: (or map {name} to another field under facts:).")
    return template.format_map(shop)


def fill_slots(text: str, values: dict[str, str], *, default: str | None = "your {slot}") -> str:
    """Replace ``[slot]`` markers with the customer's values; markers without a value become
    ``default`` ("your order number"), or stay as they are when ``default`` is None."""

    def replace(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot in values:
            return values[slot]
        if default is None:
            return match.group(0)
        if text[:match.start()].rstrip().lower().endswith(slot):
            return ""  # "the order number [order number]": the words already say it
        return default.format(slot=slot)

    return re.sub(r"[ \t]+([.,;:!?])", r"\1", _SLOT.sub(replace, text))


# --------------------------------------------------------------------------- data
def load_bitext(path: Path | str | None = None) -> pd.DataFrame:
    """The Bitext CSV (plain or gzipped) with its required columns checked."""
    path = Path(path) if path is not None else DEFAULT_CSV
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"Help data not found: {path}",
                         "The default is data/bitext-support/bitext_customer_support.csv.gz.") \
            from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"Cannot read the help data {path}: {exc}",
                         "Give a CSV with columns instruction, intent, category, response.") \
            from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"The help data {path} has no column(s) {', '.join(missing)}.",
                         "Give a CSV with columns instruction, intent, category, response.")
    df = df[(df["response"].str.strip() != "") & (df["intent"].str.strip() != "")]
    if df.empty:
        raise InputError(f"The help data {path} has no rows with a response and an intent.",
                         "Check the file.")
    return df.reset_index(drop=True)


@dataclass
class Candidate:
    id: str
    intent: str
    category: str
    text: str
    slots: tuple[str, ...]


@dataclass
class Prepared:
    candidates: list[Candidate]
    rows: int
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> responses


def prepare(df: pd.DataFrame, shop: ShopPlaceholders) -> Prepared:
    """Fill every response; keep those fit to be a help passage, count the rest by reason."""
    shop.check(m.group(1) for text in df["response"] for m in _PLACEHOLDER.finditer(text))
    out = Prepared(candidates=[], rows=len(df))
    blank = pd.Series([""] * len(df))
    entity_types = df["entity_type"] if "entity_type" in df.columns else blank
    entity_values = df["entity_value"] if "entity_value" in df.columns else blank
    for i, row in enumerate(df.itertuples(index=False)):
        text, plain_slots = _slot_plain_text(row.response, entity_types.iat[i],
                                             entity_values.iat[i])
        if _SPECIFIC.search(_PLACEHOLDER.sub(" ", text)):
            _count(out.left_out, "customer_specific")
            continue
        filled = shop.fill(text)  # the markers are not brackets yet: fill leaves them alone
        if filled.omitted_by:
            _count(out.left_out, "omitted_placeholder")
            continue
        if filled.unresolved:
            _count(out.left_out, "unresolved_brackets")
            continue
        if any(phrase in filled.text.casefold() for phrase in shop.exclude_phrases):
            _count(out.left_out, "excluded_phrase")
            continue
        slots = tuple(dict.fromkeys([*filled.slots, *plain_slots]))
        out.candidates.append(Candidate(
            id=f"{row.intent}-{i:05d}", intent=row.intent, category=row.category,
            text=_tidy(_MARKER.sub(r"[\1]", filled.text)), slots=slots))
    return out


def _slot_plain_text(response: str, etype: str, value: str) -> tuple[str, list[str]]:
    """Slots for the customer's data that Bitext wrote as plain text: the order id or name
    of the paired question, and any money amount. Placeholders (and so the shop's own
    values, filled later) are left alone."""
    parts = re.split(r"(\{\{.*?\}\})", response, flags=re.S)
    slots: list[str] = []
    for j in range(0, len(parts), 2):  # even parts lie outside placeholders
        part, slot = _slot_entity(parts[j], etype, value)
        part, amounts = _AMOUNT.subn(_marker("amount"), part)
        slots += ([slot] if slot else []) + (["amount"] if amounts else [])
        parts[j] = part
    return "".join(parts), list(dict.fromkeys(slots))


def _count(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def _marker(slot: str) -> str:
    return f"\x00{slot}\x00"


def _slot_entity(text: str, etype: str, value: str) -> tuple[str, str | None]:
    """Replace the customer's own value (order id, amount, name) written into a response."""
    slot = _ENTITY_SLOTS.get(etype)
    value = (value or "").strip()
    if not slot or not value:
        return text, None
    if etype in ("order_id", "invoice_id"):
        digits = value.lstrip("#").lstrip("0") or "0"
        pattern = rf"#?\b0*{re.escape(digits)}\b"
    else:
        pattern = re.escape(value)
    new, n = re.subn(pattern, _marker(slot), text)
    return new, slot if n else None


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def select_representative(texts: list[str], n: int, *,
                          max_similarity: float = 0.9) -> list[int]:
    """Indices of up to ``n`` texts nearest their TF-IDF centroid, skipping near-duplicates
    of one already taken. Deterministic."""
    from sklearn.feature_extraction.text import (  # lazy: +1 s; only building the base needs it
        TfidfVectorizer,
    )

    if len(texts) <= 1:
        return list(range(len(texts)))
    vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    centroid = np.asarray(vectors.mean(axis=0)).ravel()
    order = np.argsort(-(vectors @ centroid), kind="stable")
    picked: list[int] = []
    for i in order:
        if len(picked) >= n:
            break
        if picked and (vectors[picked] @ vectors[i].T).max() > max_similarity:
            continue
        picked.append(int(i))
    return picked


def select_passages(prepared: Prepared, per_intent: int,
                    max_similarity: float = 0.9) -> list[Candidate]:
    by_intent: dict[str, list[Candidate]] = {}
    for cand in prepared.candidates:
        by_intent.setdefault(cand.intent, []).append(cand)
    chosen: list[Candidate] = []
    for intent in sorted(by_intent):
        group = by_intent[intent]
        idx = select_representative([c.text for c in group], per_intent,
                                    max_similarity=max_similarity)
        chosen.extend(group[i] for i in sorted(idx))
    return chosen


# --------------------------------------------------------------------------- index + search
@dataclass(frozen=True)
class Passage:
    id: str
    intent: str
    category: str
    title: str
    text: str
    score: float
    slots: tuple[str, ...] = ()


def lead(text: str, max_chars: int = LEAD_CHARS) -> str:
    """The opening of a passage (where Bitext restates the customer's request): what is
    embedded. Whole passages average ~155 tokens and embed ~4x slower."""
    first = text.strip().split("\n\n", 1)[0].replace("\n", " ")
    if len(first) <= max_chars:
        return first
    cut = first[:max_chars]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[:end + 1] if end >= max_chars // 3 else cut.rsplit(" ", 1)[0]


def embedded_text(text: str) -> str:
    """What is embedded for a passage: its opening, slots in words ("your order number").
    Measured on 300 Bitext questions not among the passages, top-1 intent 0.91; prefixing
    the intent title gave 0.90 and sent "where is my order" to place_order."""
    return fill_slots(lead(text), {})


def intent_title(intent: str) -> str:
    return intent.replace("_", " ").strip().capitalize()


class HelpBase:
    """Help passages in Chroma (through ``VectorStore``)."""

    def __init__(self, store: Any, collection: str = COLLECTION) -> None:
        self.store = store
        self.collection_name = collection
        self._intents: frozenset[str] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HelpBase:
        from assistant.infra.vectors import (  # lazy: chromadb, +0.5 s; not for `help train`
            VectorStore,
        )

        return cls(VectorStore.from_settings(settings))

    def _collection(self):
        return self.store.collection(self.collection_name)

    def count(self) -> int:
        return self._collection().count()

    def intents(self) -> frozenset[str]:
        if self._intents is None:
            got = self._collection().get(include=["metadatas"])
            self._intents = frozenset(m["intent"] for m in got["metadatas"] or [])
        return self._intents

    def current_build(self) -> str | None:
        """The build hash of a complete index, None when empty, partial or mixed."""
        coll = self._collection()
        total = coll.count()
        if not total:
            return None
        first = coll.get(limit=1, include=["metadatas"])["metadatas"][0]
        build, expected = first.get("build"), first.get("total")
        if expected != total:
            return None
        same = coll.get(where={"build": build}, include=[])["ids"]
        return build if len(same) == total else None

    def index(self, passages: list[Candidate], build: str, *, batch: int = 64,
              progress: Progress | None = None) -> None:
        """Upsert the passages with ``build`` in their metadata, then drop older ones."""
        total = len(passages)
        passages = sorted(passages, key=lambda p: len(embedded_text(p.text)))  # less padding
        for start in range(0, total, batch):
            part = passages[start:start + batch]
            self.store.upsert(
                self.collection_name, [p.id for p in part],
                [embedded_text(p.text) for p in part],
                [{"intent": p.intent, "category": p.category, "title": intent_title(p.intent),
                  "text": p.text, "slots": ",".join(p.slots), "build": build, "total": total}
                 for p in part])
            if progress:
                progress("indexing help passages", min(1.0, (start + len(part)) / total))
        self._collection().delete(where={"build": {"$ne": build}})
        self._intents = None

    def search(self, text: str, k: int = 5, intent: str | None = None) -> list[Passage]:
        """The ``k`` passages nearest ``text`` (cosine), optionally of one intent only."""
        query = (text or "").strip()
        if not query:
            raise InputError("The search text is empty.", "Give the ticket or a question.")
        if not 1 <= k <= MAX_K:
            raise InputError(f"k={k} is out of range.", f"Ask for 1 to {MAX_K} passages.")
        if not self.count():
            raise AssistantError("The help base is empty.",
                                 "Build it with: assistant help build", code="helpbase-missing")
        where = None
        if intent is not None:
            if intent not in self.intents():
                raise InputError(f"Unknown intent '{intent}'.",
                                 "Use one of: " + ", ".join(sorted(self.intents())))
            where = {"intent": intent}
        hits = self.store.query(self.collection_name, query[:MAX_QUERY_CHARS], k, where)
        return [_passage(h) for h in hits]


def _passage(hit: dict[str, Any]) -> Passage:
    meta = hit["metadata"] or {}
    slots = tuple(s for s in str(meta.get("slots", "")).split(",") if s)
    return Passage(id=hit["id"], intent=meta.get("intent", ""),
                   category=meta.get("category", ""), title=meta.get("title", ""),
                   text=meta.get("text") or hit["document"],
                   score=round(1.0 - float(hit["distance"]), 4), slots=slots)


# --------------------------------------------------------------------------- build
def build_hash(csv_path: Path, shop: ShopPlaceholders, per_intent: int,
               max_similarity: float, model_id: str) -> str:
    parts = [file_sha256(Path(csv_path)), shop.digest, str(per_intent), str(max_similarity),
             model_id, str(BUILD_VERSION)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def build_helpbase(help_base: HelpBase, *, csv_path: Path | str | None = None,
                   shop_path: Path | str | None = None, per_intent: int = 20,
                   max_similarity: float = 0.9, force: bool = False,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Fill, select and index the help passages; skipped when the inputs are unchanged."""
    if not 1 <= per_intent <= 500:
        raise InputError(f"per_intent={per_intent} is out of range.", "Use 1 to 500.")
    csv_path = Path(csv_path) if csv_path is not None else DEFAULT_CSV
    shop = load_shop(shop_path)
    if not csv_path.is_file():
        raise InputError(f"Help data not found: {csv_path}",
                         "The default is data/bitext-support/bitext_customer_support.csv.gz.")
    model_id = help_base.store.ef.embedder.model_id
    build = build_hash(csv_path, shop, per_intent, max_similarity, model_id)
    if not force and help_base.current_build() == build:
        if progress:
            progress("help base up to date", 1.0)
        return {"skipped": True, "build": build, "passages": help_base.count()}
    if progress:
        progress("filling placeholders", 0.0)
    df = load_bitext(csv_path)
    prepared = prepare(df, shop)
    chosen = select_passages(prepared, per_intent, max_similarity)
    if not chosen:
        raise InputError(f"No response in {csv_path} is fit to be a help passage "
                         f"(left out: {prepared.left_out}).",
                         "Check the data and the omit: / exclude_phrases: lists of the shop "
                         "settings.")
    help_base.index(chosen, build, progress=progress)
    per = pd.Series([c.intent for c in chosen]).value_counts().sort_index()
    return {"skipped": False, "build": build, "rows": prepared.rows,
            "candidates": len(prepared.candidates), "left_out": prepared.left_out,
            "passages": len(chosen), "intents": len(per),
            "per_intent": {k: int(v) for k, v in per.items()},
            "with_slots": sum(1 for c in chosen if c.slots)}
