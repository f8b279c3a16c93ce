"""Intent classifier: routes a ticket to one of the Bitext intents with a confidence.

A scikit-learn Pipeline: word (1-2) and character (2-5, within word boundaries) TF-IDF n-grams,
then multinomial logistic regression (probabilities for the confidence and the top 3). Trained
on the Bitext ``instruction`` -> ``intent`` pairs; scored on a held-out stratified split
(accuracy, macro-F1, per-intent precision/recall/F1), then refitted on all rows. Saved as the
artefact bundle ``intents`` (skops + manifest with the scores and the data hash).

Caveat: Bitext instructions are generated from seed phrases, so the held-out split holds close
paraphrases of training rows; real tickets are messier than that score suggests.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from assistant.core.config import REPO_ROOT
from assistant.core.errors import AssistantError, ConfigError, InputError
from assistant.infra.artifacts import ArtifactError, load_bundle, save_bundle
from assistant.orders.tables import file_sha256
from assistant.support.helpbase import DEFAULT_CSV, load_bitext

KIND = "intents"
SHOP_EXAMPLES = REPO_ROOT / "data" / "support_examples.yaml"
MAX_TEXT_CHARS = 5000  # a 30,000-character ticket is classified on its first 5,000
TRAIN_HINT = "Train it with: assistant help train"


class IntentPrediction(NamedTuple):
    intent: str
    confidence: float
    top3: list[tuple[str, float]]


def make_pipeline(*, c: float = 20.0, seed: int = 0) -> Pipeline:
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                  min_df=2, lowercase=True)),
    ])
    return Pipeline([("features", features),
                     ("model", LogisticRegression(C=c, max_iter=3000, random_state=seed))])


def load_shop_examples(path: Path | str | None = None) -> pd.DataFrame:
    """The shop's own support questions (``data/support_examples.yaml``: intent -> lines),
    as instruction, intent rows; an empty frame when the file is absent."""
    path = Path(path) if path is not None else SHOP_EXAMPLES
    if not path.exists():
        return pd.DataFrame(columns=["instruction", "intent"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"Support examples {path} are not valid YAML: {exc}.",
                          "Fix data/support_examples.yaml (intent: [lines]).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Support examples {path} must map intents to lists of lines.",
                          "See the layout at the top of data/support_examples.yaml.")
    rows = [{"instruction": str(t).strip(), "intent": str(intent)}
            for intent, lines in data.items() for t in (lines or []) if str(t).strip()]
    return pd.DataFrame(rows, columns=["instruction", "intent"])


def load_examples(path: Path | str | None = None, shop: Path | str | None = None, *,
                  with_shop: bool = True) -> pd.DataFrame:
    """instruction, intent, category rows: the Bitext instructions plus the shop's own
    support questions (for intents Bitext has); exact duplicate (instruction, intent)
    pairs dropped so none sits on both sides of the split."""
    df = load_bitext(path)[["instruction", "intent", "category"]]
    categories = df.drop_duplicates("intent").set_index("intent")["category"]
    extra = load_shop_examples(shop) if with_shop else load_shop_examples(shop).iloc[:0]
    extra = extra[extra["intent"].isin(categories.index)]
    extra = extra.assign(category=extra["intent"].map(categories))
    df = pd.concat([df, extra], ignore_index=True)
    df = df[df["instruction"].str.strip() != ""]
    return df.drop_duplicates(["instruction", "intent"]).reset_index(drop=True)


def evaluate(pipeline: Pipeline, texts: pd.Series, labels: pd.Series) -> dict[str, Any]:
    predicted = pipeline.predict(texts)
    report = classification_report(labels, predicted, output_dict=True, zero_division=0)
    per_intent = {k: {"precision": round(v["precision"], 4), "recall": round(v["recall"], 4),
                      "f1": round(v["f1-score"], 4), "support": int(v["support"])}
                  for k, v in report.items() if isinstance(v, dict) and k in set(labels)}
    return {"accuracy": round(float(accuracy_score(labels, predicted)), 4),
            "macro_f1": round(float(f1_score(labels, predicted, average="macro")), 4),
            "test_rows": len(labels), "per_intent": per_intent}


def train_intents(artifacts_dir: Path, csv_path: Path | str | None = None, *,
                  test_size: float = 0.2, seed: int = 0, refit: bool = True,
                  save: bool = True) -> dict[str, Any]:
    """Fit on a stratified split, score on the held-out part, refit on everything, save."""
    csv_path = Path(csv_path) if csv_path is not None else DEFAULT_CSV
    df = load_examples(csv_path)
    counts = df["intent"].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise InputError("Training needs at least 2 intents with at least 2 examples each.",
                         "Give more labelled instructions.")
    train, test = train_test_split(df, test_size=test_size, stratify=df["intent"],
                                   random_state=seed)
    started = time.perf_counter()
    pipeline = make_pipeline(seed=seed).fit(train["instruction"], train["intent"])
    fit_seconds = time.perf_counter() - started
    scores = evaluate(pipeline, test["instruction"], test["intent"])
    if refit:
        started = time.perf_counter()
        pipeline = make_pipeline(seed=seed).fit(df["instruction"], df["intent"])
        fit_seconds = time.perf_counter() - started
    categories = df.drop_duplicates("intent").set_index("intent")["category"].to_dict()
    summary: dict[str, Any] = {
        "rows": len(df), "train_rows": len(train), "intents": len(counts),
        "held_out": scores, "fit_seconds": round(fit_seconds, 2), "refit_on_all": refit,
        "data_hash": file_sha256(Path(csv_path))
        + (f"+{file_sha256(SHOP_EXAMPLES)}" if SHOP_EXAMPLES.exists() else ""),
        "categories": categories,
    }
    if save:
        report = pd.DataFrame.from_dict(scores["per_intent"], orient="index")
        report.index.name = "intent"
        summary["artifacts"] = str(save_bundle(
            Path(artifacts_dir), KIND, models={"pipeline": pipeline},
            tables={"report": report.reset_index()}, manifest={"summary": summary}))
    return summary


def load_trained(artifacts_dir: Path, kind: str, what: str) -> Any:
    """A bundle trained by ``assistant help train``; an AssistantError naming that command
    when it is missing or unreadable."""
    try:
        bundle = load_bundle(Path(artifacts_dir), kind)
    except ArtifactError as err:
        raise ArtifactError(err.message, TRAIN_HINT) from None
    if bundle is None:
        raise AssistantError(f"{what} has not been trained yet.", TRAIN_HINT,
                             code=f"{kind}-missing")
    return bundle


@dataclass
class IntentClassifier:
    pipeline: Pipeline
    summary: dict[str, Any]

    @classmethod
    def load(cls, artifacts_dir: Path) -> IntentClassifier:
        """The trained classifier; an AssistantError with the command to run when none is."""
        bundle = load_trained(artifacts_dir, KIND, "The intent classifier")
        return cls(bundle.models["pipeline"], bundle.manifest["summary"])

    @property
    def intents(self) -> list[str]:
        return [str(c) for c in self.pipeline.classes_]

    def category_of(self, intent: str) -> str | None:
        return self.summary.get("categories", {}).get(intent)

    def predict(self, text: str) -> IntentPrediction:
        """(intent, confidence, top 3 as (intent, probability)), best first."""
        clean = re.sub(r"\s+", " ", text or "").strip()
        if not clean:
            raise InputError("The ticket is empty.", "Paste the customer's message.")
        probs = self.pipeline.predict_proba([clean[:MAX_TEXT_CHARS]])[0]
        order = np.argsort(-probs, kind="stable")[:3]
        top3 = [(str(self.pipeline.classes_[i]), round(float(probs[i]), 4)) for i in order]
        return IntentPrediction(top3[0][0], top3[0][1], top3)
