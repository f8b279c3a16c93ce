"""Which part of the assistant answers a customer's chat message: *support* (a help-base
answer, with the help intent from the desk's intent classifier), *shopping* (facts are taken
and recommendations follow) or *chat* (small talk: the model, behind an output guard).

A scikit-learn Pipeline like the intent classifier's (word and character TF-IDF, logistic
regression), trained on Bitext instructions (support, ``SUPPORT_PER_INTENT`` per intent so
no label drowns the others) and the shopping and small-talk lines of
``data/routing_examples.yaml``; scored on a held-out stratified split, then refitted on all
rows and saved as the artefact bundle ``routes``. At run time a message from which the
vocabulary read facts is shopping unless support is clearly more likely
(``SUPPORT_OVER_FACTS``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from assistant.core.config import REPO_ROOT
from assistant.core.errors import ConfigError
from assistant.infra.artifacts import save_bundle
from assistant.orders.tables import file_sha256
from assistant.support.helpbase import DEFAULT_CSV
from assistant.support.intents import (
    MAX_TEXT_CHARS,
    IntentClassifier,
    load_examples,
    load_shop_examples,
    load_trained,
    make_pipeline,
)

KIND = "routes"
SUPPORT, SHOPPING, CHAT = "support", "shopping", "chat"
KINDS = (SUPPORT, SHOPPING, CHAT)
DEFAULT_EXAMPLES = REPO_ROOT / "data" / "routing_examples.yaml"
SUPPORT_PER_INTENT = 60
SUPPORT_OVER_FACTS = 0.8  # a message with facts is support only when this sure


@dataclass(frozen=True)
class Route:
    kind: str  # support | shopping | chat
    confidence: float  # of the kind
    intent: str | None = None  # the help intent, for support
    intent_confidence: float = 0.0


def load_route_examples(examples: Path | str | None = None, bitext: Path | str | None = None,
                        *, per_intent: int = SUPPORT_PER_INTENT, seed: int = 0) -> pd.DataFrame:
    """text, kind rows: Bitext instructions as support, the file's shopping and chat lines."""
    path = Path(examples) if examples is not None else DEFAULT_EXAMPLES
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Routing examples {path} cannot be read: {exc}.",
                          "Fix or restore data/routing_examples.yaml.") from None
    rows = []
    for kind in (SHOPPING, CHAT):
        lines = data.get(kind) if isinstance(data, dict) else None
        if not isinstance(lines, list) or len(lines) < 10:
            raise ConfigError(f"Routing examples {path}: `{kind}` needs a list of at least "
                              "10 lines.", "See the layout at the top of the file.")
        rows += [{"text": str(t).strip(), "kind": kind} for t in lines if str(t).strip()]
    support = load_examples(bitext, with_shop=False)  # Bitext alone, sampled
    support = support.groupby("intent", group_keys=False).apply(
        lambda g: g.sample(min(per_intent, len(g)), random_state=seed))
    rows += [{"text": t, "kind": SUPPORT} for t in support["instruction"]]
    rows += [{"text": t, "kind": SUPPORT} for t in load_shop_examples()["instruction"]]
    return pd.DataFrame(rows).drop_duplicates("text").reset_index(drop=True)


def train_routes(artifacts_dir: Path, *, examples: Path | str | None = None,
                 bitext: Path | str | None = None, test_size: float = 0.2, seed: int = 0,
                 save: bool = True) -> dict[str, Any]:
    """Fit on a stratified split, score on the held-out part, refit on everything, save."""
    df = load_route_examples(examples, bitext, seed=seed)
    train, test = train_test_split(df, test_size=test_size, stratify=df["kind"],
                                   random_state=seed)
    pipeline = make_pipeline(seed=seed)
    pipeline.set_params(model__class_weight="balanced")
    pipeline.fit(train["text"], train["kind"])
    predicted = pipeline.predict(test["text"])
    report = classification_report(test["kind"], predicted, output_dict=True, zero_division=0)
    scores = {"accuracy": round(float(accuracy_score(test["kind"], predicted)), 4),
              "macro_f1": round(float(f1_score(test["kind"], predicted, average="macro")), 4),
              "test_rows": len(test),
              "per_kind": {k: {"precision": round(report[k]["precision"], 4),
                               "recall": round(report[k]["recall"], 4)} for k in KINDS}}
    started = time.perf_counter()
    pipeline = make_pipeline(seed=seed)
    pipeline.set_params(model__class_weight="balanced")
    pipeline.fit(df["text"], df["kind"])
    summary: dict[str, Any] = {
        "rows": len(df), "counts": df["kind"].value_counts().to_dict(), "held_out": scores,
        "fit_seconds": round(time.perf_counter() - started, 2),
        "data_hash": file_sha256(Path(bitext) if bitext else DEFAULT_CSV)
        + "+" + file_sha256(Path(examples) if examples else DEFAULT_EXAMPLES)}
    if save:
        summary["artifacts"] = str(save_bundle(Path(artifacts_dir), KIND,
                                               models={"pipeline": pipeline}, tables={},
                                               manifest={"summary": summary}))
    return summary


class Router:
    """A message -> ``Route``. The help intent comes from the desk's classifier."""

    def __init__(self, pipeline: Pipeline, intents: IntentClassifier | None,
                 summary: dict[str, Any] | None = None) -> None:
        self.pipeline = pipeline
        self.intents = intents
        self.summary = summary or {}

    @classmethod
    def load(cls, artifacts_dir: Path, intents: IntentClassifier | None) -> Router:
        bundle = load_trained(artifacts_dir, KIND, "The message router")
        return cls(bundle.models["pipeline"], intents, bundle.manifest["summary"])

    def kinds(self, text: str) -> dict[str, float]:
        clean = re.sub(r"\s+", " ", text or "").strip()[:MAX_TEXT_CHARS]
        probs = self.pipeline.predict_proba([clean])[0]
        return {str(k): float(p) for k, p in zip(self.pipeline.classes_, probs, strict=True)}

    def route(self, text: str, *, facts: bool = False) -> Route:
        """The kind of message (``facts``: the vocabulary read facts from it)."""
        if not re.search(r"[^\W_]", text or ""):
            return Route(CHAT, 1.0)
        probs = self.kinds(text)
        kind = max(probs, key=probs.__getitem__)
        if facts and kind != SHOPPING and probs[SUPPORT] < SUPPORT_OVER_FACTS:
            kind = SHOPPING
        if kind != SUPPORT or self.intents is None:
            return Route(kind, round(probs[kind], 4))
        pred = self.intents.predict(text)
        return Route(SUPPORT, round(probs[SUPPORT], 4), pred.intent, float(pred.confidence))
