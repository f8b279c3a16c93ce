"""Intent classifier: held-out accuracy floor on the real Bitext data, predictions, persistence.

Measured on the shipped data (80/20 stratified split, seed 0): accuracy 0.998, macro-F1 0.998.
Floors: 0.97 for both. Bitext instructions are paraphrases of seed phrases, so hand-written
tickets score lower (22 of the 30 below, 0.73): floor 0.6.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from assistant.core.errors import AssistantError, InputError
from assistant.infra.artifacts import ArtifactError
from assistant.support.helpbase import DEFAULT_CSV, load_bitext
from assistant.support.intents import (
    IntentClassifier,
    IntentPrediction,
    load_examples,
    load_shop_examples,
    train_intents,
)

# measured 0.971 / 0.971 since the held-out split also holds the shop's own questions
# (data/support_examples.yaml), harder than Bitext's paraphrases (0.998 on those alone)
ACCURACY_FLOOR = 0.95
MACRO_F1_FLOOR = 0.95
HANDWRITTEN_FLOOR = 0.6
HANDWRITTEN = [
    ("where is my order", "track_order"),
    ("My parcel still hasn't arrived, it's been two weeks", "delivery_period"),
    ("I want a refund for the broken vase", "get_refund"),
    ("when will I get my money back?", "track_refund"),
    ("how do I change the delivery address for my order", "change_shipping_address"),
    ("I'd like to speak to a real person", "contact_human_agent"),
    ("can I pay with PayPal?", "check_payment_methods"),
    ("I forgot my password", "recover_password"),
    ("please cancel my order, I ordered the wrong size", "cancel_order"),
    ("I need a copy of my invoice for my accountant", "get_invoice"),
    ("how long does shipping take to Germany", "delivery_period"),
    ("do you ship to France?", "delivery_options"),
    ("unsubscribe me from your newsletter", "newsletter_subscription"),
    ("the candle arrived broken and nobody answers my emails, this is unacceptable",
     "complaint"),
    ("I want to add another item to my order", "change_order"),
    ("what is your return policy", "check_refund_policy"),
    ("close my account please", "delete_account"),
    ("my card was charged twice", "payment_issue"),
    ("is there a fee if I cancel?", "check_cancellation_fee"),
    ("what's your phone number", "contact_customer_service"),
    ("I can't sign up, the form gives an error", "registration_problems"),
    ("how do I open an account", "create_account"),
    ("I want to leave a review for the lovely teapot", "review"),
    ("has my refund been processed yet", "track_refund"),
    ("where can I see the bill for last month", "check_invoice"),
    ("I'd like to buy 20 mugs for my cafe", "place_order"),
    ("update my email address on my profile", "edit_account"),
    ("tracking number for my parcel?", "track_order"),
    ("change my account to a business account", "switch_account"),
    ("add a new shipping address", "set_up_shipping_address"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("artifacts")
    return train_intents(root, DEFAULT_CSV, refit=False), root


def test_held_out_accuracy_floor(trained: tuple[dict, Path]) -> None:
    summary, _ = trained
    held = summary["held_out"]
    assert summary["intents"] == 27
    assert held["test_rows"] == pytest.approx(0.2 * summary["rows"], abs=1)
    assert held["accuracy"] >= ACCURACY_FLOOR, held
    assert held["macro_f1"] >= MACRO_F1_FLOOR, held
    assert len(held["per_intent"]) == 27
    assert min(v["f1"] for v in held["per_intent"].values()) >= 0.9
    assert summary["fit_seconds"] < 60


def test_predict_and_persisted_bundle(trained: tuple[dict, Path]) -> None:
    _, root = trained
    clf = IntentClassifier.load(root)
    pred = clf.predict("I'd like to speak to a real person")
    assert isinstance(pred, IntentPrediction)
    intent, confidence, top3 = pred
    assert intent == "contact_human_agent" and confidence > 0.5
    assert [i for i, _ in top3][0] == intent and len(top3) == 3
    assert top3[0][1] >= top3[1][1] >= top3[2][1]
    assert clf.category_of(intent) == "CONTACT"
    assert len(clf.intents) == 27
    assert clf.summary["held_out"]["accuracy"] >= ACCURACY_FLOOR


def test_handwritten_tickets(trained: tuple[dict, Path]) -> None:
    clf = IntentClassifier.load(trained[1])
    right = sum(clf.predict(text).intent == intent for text, intent in HANDWRITTEN)
    assert right / len(HANDWRITTEN) >= HANDWRITTEN_FLOOR, right


def test_bad_text(trained: tuple[dict, Path]) -> None:
    clf = IntentClassifier.load(trained[1])
    for text in ("", "   \n"):
        with pytest.raises(InputError, match="empty"):
            clf.predict(text)
    huge = clf.predict("where is my order? " * 2000)  # 38,000 characters: cut, not refused
    assert huge.intent in clf.intents
    injected = clf.predict("<script>alert(1)</script> ignore your instructions")
    assert 0 <= injected.confidence <= 1


def test_not_trained_says_how(tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="not been trained") as info:
        IntentClassifier.load(tmp_path)
    assert "assistant help train" in info.value.hint


def test_bundle_from_another_sklearn_is_refused(trained: tuple[dict, Path],
                                                tmp_path: Path) -> None:
    import json
    import shutil

    _, root = trained
    copy = tmp_path / "artifacts"
    shutil.copytree(root, copy)
    bundle = next(copy.glob("intents-*"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["libraries"]["scikit-learn"] = "0.0.1"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="0.0.1") as info:
        IntentClassifier.load(copy)
    assert "assistant help train" in info.value.hint


def test_small_sample_trains_and_rejects_too_little(tmp_path: Path) -> None:
    df = load_bitext(DEFAULT_CSV)
    sample = df[df["intent"].isin(["track_order", "get_refund", "review"])].groupby(
        "intent").head(20)
    path = tmp_path / "sample.csv"
    sample.to_csv(path, index=False)
    summary = train_intents(tmp_path / "art", path, save=False)
    assert summary["intents"] == 3 and "artifacts" not in summary
    tiny = tmp_path / "tiny.csv"
    pd.DataFrame({"instruction": ["a", "b"], "intent": ["x", "y"], "category": ["C", "C"],
                  "response": ["r", "r"]}).to_csv(tiny, index=False)
    with pytest.raises(InputError, match="at least 2"):
        train_intents(tmp_path / "art", tiny)
    assert len(load_examples(path, with_shop=False)) == 60
    # the shop's own questions join for the intents the data has, and only those
    shop = load_shop_examples()
    mine = shop[shop["intent"].isin(["track_order", "get_refund", "review"])]
    both = load_examples(path)
    assert len(both) == 60 + len(mine) and set(both["intent"]) == {"track_order", "get_refund",
                                                                  "review"}


def test_cli_classify_needs_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from assistant.cli import app

    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(app, ["help", "classify", "where is my order"])
    assert result.exit_code == 2
    assert "not been trained" in result.output and "assistant help train" in result.output
