"""RFM, answers derivation, clusters, classifier and artefacts on small hand-made data."""

import numpy as np
import pandas as pd
import pytest

from assistant.core.errors import InputError
from assistant.infra.artifacts import ArtifactError, load_bundle, save_bundle
from assistant.segments.answers import AnswerNoise, add_noise, true_answers
from assistant.segments.model import (
    SEGMENTS,
    choose_classifier,
    discover_clusters,
    evaluate_classifier,
    explain,
    fit_classifier,
    input_row,
    rfm_scores,
    segment_candidates,
    train_table,
    training_rows,
)


def features_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    freq = rng.integers(1, 30, n)
    basket = rng.lognormal(5.5, 0.6, n)
    tenure = rng.integers(30, 370, n)
    return pd.DataFrame({
        "recency_days": rng.integers(1, 370, n).astype(float),
        "frequency": freq.astype(float),
        "monetary": freq * basket,
        "gross_spend": freq * basket * 1.05,
        "tenure_days": tenure.astype(float),
        "avg_basket_value": basket,
        "avg_items_per_order": rng.lognormal(5, 0.8, n),
        "distinct_items": rng.integers(1, 300, n).astype(float),
        "return_rate": rng.uniform(0, 0.2, n),
        "days_between_orders": np.where(freq > 1, tenure / np.maximum(freq - 1, 1), np.nan),
        "country": rng.choice(["United Kingdom", "France", "Australia"], n, p=[.8, .15, .05]),
        "share_candles": rng.uniform(0, 1, n),
    }, index=pd.Index([f"c{i}" for i in range(n)], name="customer")).assign(
        share_other=lambda f: 1 - f["share_candles"])


def test_rfm_scores_by_hand():
    # 10 customers: recency 1..10 days, frequency 10..1, monetary 100..1000
    f = pd.DataFrame({"recency_days": np.arange(1, 11, dtype=float),
                      "frequency": np.arange(10, 0, -1, dtype=float),
                      "monetary": np.arange(100, 1001, 100, dtype=float)},
                     index=[f"c{i}" for i in range(10)])
    r = rfm_scores(f)
    # most recent two -> R=5; most frequent two -> F=5; biggest spenders -> M=5
    assert r.loc["c0", ["r_score", "f_score", "m_score"]].tolist() == [5, 5, 1]
    assert r.loc["c9", ["r_score", "f_score", "m_score"]].tolist() == [1, 1, 5]
    assert r.loc["c0", "fm_score"] == 3  # (5 + 1) / 2
    assert r.loc["c0", "rfm_segment"] == "Potential Loyalists"
    assert r.loc["c9", "rfm_segment"] == "Lost" or r.loc["c9", "fm_score"] == 3
    assert set(r["rfm_segment"]) <= set(SEGMENTS)


def test_rfm_named_cells():
    f = pd.DataFrame({"recency_days": [1, 2, 300, 310, 50, 60, 100, 120, 200, 250],
                      "frequency": [30, 1, 30, 1, 5, 6, 3, 2, 4, 20],
                      "monetary": [9000, 10, 8000, 5, 500, 600, 200, 100, 300, 4000]},
                     index=list("abcdefghij"), dtype=float)
    r = rfm_scores(f)["rfm_segment"]
    assert r["a"] == "Champions"  # newest, most frequent, biggest
    assert r["b"] == "New"  # newest, one small order
    assert r["c"] == "Can't Lose Them"  # gone quiet, was a top customer
    assert r["d"] == "Lost"  # oldest, one small order


def test_rfm_needs_customers():
    with pytest.raises(InputError):
        rfm_scores(features_frame(3))


def test_true_answers_follow_behaviour():
    f = features_frame(50)
    a = true_answers(f)
    one = f["frequency"] == 1
    assert (a.loc[one, "order_frequency"] == "first order").all()
    assert (a.loc[f["avg_basket_value"] < 150, "spend_per_order"] == "under £150").all()
    assert (a.loc[f["recency_days"] <= 31, "last_order"] == "within the last month").all()
    assert (a.loc[f["country"] == "France", "region"] == "Europe").all()
    assert set(a["interest_candles"]) <= {0.0, 1.0}
    assert "interest_other" not in a


def test_noise_is_seeded_and_bounded():
    a = true_answers(features_frame(500))
    n1, n2 = add_noise(a, AnswerNoise(), seed=1), add_noise(a, AnswerNoise(), seed=1)
    pd.testing.assert_frame_equal(n1, n2)
    changed = (n1["spend_per_order"] != a["spend_per_order"]).mean()
    assert 0.05 < changed < 0.35  # ~15% moved + ~5% skipped
    pd.testing.assert_frame_equal(add_noise(a, AnswerNoise.none()), a)


def test_clusters_chosen_over_range():
    f = features_frame(300)
    res = discover_clusters(f, rfm_scores(f), range(2, 5), sample=300)
    assert res.k in (2, 3, 4) and list(res.scores["k"]) == [2, 3, 4]
    assert res.profiles["size"].sum() == 300
    assert res.profiles["nearest_rfm"].isin(SEGMENTS).all()


def test_classifier_learns_rfm_and_explains():
    f = features_frame(400)
    labels = rfm_scores(f)["rfm_segment"]
    rows = training_rows(f, labels)
    assert len(rows) == 3 * 400 and set(rows["mode"]) == {"both", "behaviour", "answers"}
    report = evaluate_classifier(rows, folds=3)
    both, answers = report.by_mode["both"], report.by_mode["answers"]
    assert both["accuracy"] > report.baseline_accuracy + 0.2
    assert answers["accuracy"] > report.baseline_accuracy  # cold start still beats majority
    assert 0 <= answers["brier"] <= 1
    assert np.array(report.confusion["both"]).sum() == 400
    pipe = fit_classifier(rows)
    pred = explain(pipe, input_row(pipe, {"last_order": "within the last month",
                                          "order_frequency": "more than once a month",
                                          "interests": ["candles"]}, None))
    assert pred.segment in SEGMENTS and 0 < pred.probability <= 1
    assert pred.reasons and all(isinstance(r, str) for r in pred.reasons)
    assert abs(sum(pred.probabilities.values()) - 1) < 1e-6
    # an answer the model never saw is ignored, not an error
    odd = explain(pipe, input_row(pipe, {"last_order": "yesterday?"}, None))
    assert odd.segment in SEGMENTS


def _rows(label) -> pd.DataFrame:
    """Survey rows (3 modes per customer) whose segment is ``label(buyer_type, region)``."""
    rng = np.random.default_rng(3)
    n = 240
    buyer = rng.choice(["for myself", "for my business"], n)
    region = rng.choice(["United Kingdom", "Europe"], n)
    segment = [label(b, r) for b, r in zip(buyer, region, strict=True)]
    frames = []
    for mode in ("both", "behaviour", "answers"):
        part = pd.DataFrame({"buyer_type": buyer, "region": region,
                             "frequency": rng.integers(1, 20, n).astype(float)})
        if mode == "answers":
            part["frequency"] = np.nan
        if mode == "behaviour":
            part[["buyer_type", "region"]] = np.nan
        frames.append(part.assign(mode=mode, customer=[f"c{i}" for i in range(n)],
                                  segment=segment))
    return pd.concat(frames, ignore_index=True)


def test_the_segment_classifier_is_chosen_by_grouped_cv_and_explains_itself(tmp_path):
    # an interaction of two answers (either both or neither): a forest finds it, a linear
    # model cannot; the forest wins on answers only and gives reasons without coefficients
    rows = _rows(lambda b, r: "A" if (b == "for myself") == (r == "Europe") else "B")
    candidates = segment_candidates()
    chosen, reports = choose_classifier(rows, candidates, folds=3)
    assert list(reports) == ["logistic C=1", "logistic C=0.1", "random forest"]
    assert chosen == "random forest"
    f1 = {n: r.by_mode["answers"]["macro_f1"] for n, r in reports.items()}
    assert f1["random forest"] > 0.95 > 0.7 > f1["logistic C=1"]
    pipe = fit_classifier(rows, candidates[chosen])
    pred = explain(pipe, input_row(pipe, {"buyer_type": "for myself", "region": "Europe"},
                                   None))
    assert pred.segment == "A" and pred.probability > 0.9
    assert set(pred.reasons) == {"said buyer type: for myself", "said region: Europe"}
    # the forest goes through the bundle (skops) and comes back the same
    save_bundle(tmp_path, "segments", models={"classifier": pipe}, tables={}, manifest={})
    loaded = load_bundle(tmp_path, "segments").models["classifier"]
    row = input_row(loaded, {"buyer_type": "for my business", "region": "Europe"}, None)
    assert explain(loaded, row).segment == "B"

    # one answer decides: every candidate is right, so the simplest stays
    simple, reports = choose_classifier(_rows(lambda b, r: "A" if r == "Europe" else "B"),
                                        candidates, folds=3)
    assert simple == "logistic C=1"
    assert all(r.by_mode["answers"]["macro_f1"] > 0.95 for r in reports.values())


def test_artifacts_roundtrip_and_version_check(tmp_path):
    f = features_frame(200)
    rows = training_rows(f, rfm_scores(f)["rfm_segment"])
    pipe = fit_classifier(rows)
    X = rows.drop(columns=["mode", "customer", "segment"])
    path = save_bundle(tmp_path, "segments", models={"classifier": pipe},
                       tables={"customers": f.reset_index()}, manifest={"summary": {"x": 1}})
    bundle = load_bundle(tmp_path, "segments")
    assert bundle.path == path and bundle.manifest["summary"] == {"x": 1}
    np.testing.assert_allclose(bundle.models["classifier"].predict_proba(X.head(20)),
                               pipe.predict_proba(X.head(20)))
    pd.testing.assert_frame_equal(bundle.tables["customers"], f.reset_index())
    # a bundle from another scikit-learn is refused with the fix
    manifest = path / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"scikit-learn": "', '"scikit-learn": "0.'))
    with pytest.raises(ArtifactError) as exc:
        load_bundle(tmp_path, "segments")
    assert "segments build" in exc.value.hint


def test_failed_save_keeps_previous_bundle(tmp_path):
    first = save_bundle(tmp_path, "segments", models={}, tables={}, manifest={"n": 1})

    class Boom:
        attrs: dict = {}

        def to_parquet(self, path):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_bundle(tmp_path, "segments", models={}, tables={"t": Boom()}, manifest={"n": 2})
    assert load_bundle(tmp_path, "segments").path == first
    assert not list(tmp_path.glob(".*partial"))


def test_a_model_file_with_other_types_is_refused(tmp_path):
    """Issue 15: skops trusts exact types only; a file holding anything else (here a
    builtins function, the classic gadget) is refused, never loaded."""
    import operator

    import skops.io as sio

    path = save_bundle(tmp_path, "segments", models={}, tables={},
                       manifest={"models": ["classifier"]})
    sio.dump({"f": operator.attrgetter("x")}, path / "classifier.skops")
    with pytest.raises(ArtifactError, match="types we do not load"):
        load_bundle(tmp_path, "segments")


@pytest.mark.parametrize("pointer", ["../../etc", "/tmp", "segments-x/../..", "intents-1"])
def test_a_pointer_cannot_leave_the_artifact_folder(tmp_path, pointer):
    save_bundle(tmp_path / "art", "segments", models={}, tables={}, manifest={"n": 1})
    (tmp_path / "art" / "segments.current").write_text(pointer)
    with pytest.raises(ArtifactError, match="not a segments bundle|outside"):
        load_bundle(tmp_path / "art", "segments")


def test_nothing_built_yet(tmp_path):
    assert load_bundle(tmp_path, "segments") is None


def test_train_table_generic():
    rng = np.random.default_rng(0)
    n = 300
    t = pd.DataFrame({"plan": rng.choice(["a", "b"], n), "age": rng.integers(18, 80, n)})
    t["label"] = np.where((t["plan"] == "a") & (t["age"] > 40), "yes", "no")
    res = train_table(t, "label")
    assert res["accuracy"] > res["baseline"]["accuracy"]
    assert res["rows"] == n and res["classes"] == ["no", "yes"]
    # issue 16: the model is chosen by CV among candidates; an interaction (plan AND age)
    # is what trees find and a linear model cannot
    assert set(res["candidates"]) == {"logistic C=1", "logistic C=0.1", "logistic C=0.01",
                                      "gradient boosting", "random forest"}
    assert res["macro_f1"] == max(c["macro_f1"] for c in res["candidates"].values())
    assert res["model"] in ("gradient boosting", "random forest")
    assert res["macro_f1"] > res["candidates"]["logistic C=1"]["macro_f1"]
    with pytest.raises(InputError, match="no column"):
        train_table(t, "nope")
    with pytest.raises(InputError, match="only one class"):
        train_table(t.assign(label="x"), "label")


def test_planner_orders_by_information_gain_and_stops_when_confident():
    from assistant.segments.model import ASK_ORDER, QuestionPlanner, answer_likelihoods

    f = features_frame(400)
    rows = training_rows(f, rfm_scores(f)["rfm_segment"])
    pipe = fit_classifier(rows)
    lik = answer_likelihoods(rows)
    assert set(lik["question"]) == set(ASK_ORDER)
    sums = lik.groupby(["question", "segment"])["p"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    planner = QuestionPlanner(pipe, lik, threshold=0.99)
    gains = planner.gains({})
    assert set(gains) == set(ASK_ORDER)
    first = planner.next_question({})
    assert first == max(gains, key=gains.get)
    # the answered question is not offered again; candidates restrict the choice
    answered = {first: planner.options[first][0]} if first != "interests" else {first: []}
    assert first not in planner.gains(answered)
    assert planner.next_question({}, candidates=["region"]) == "region"
    # confident enough (threshold 0) -> stop; nothing left -> stop
    assert QuestionPlanner(pipe, lik, threshold=0.0).next_question({}) is None
    assert planner.next_question({}, candidates=[]) is None


def test_segment_meanings_are_checked_and_shown_to_customers(tmp_path):
    from assistant.core.errors import ConfigError
    from assistant.segments.meanings import load_meanings

    shipped = load_meanings()
    assert set(shipped.texts) == set(SEGMENTS)
    assert shipped.for_customer("Need Attention") is None  # "" shows nothing
    assert shipped.for_customer(None) is None
    assert all(name not in (shipped.for_customer(name) or "") for name in SEGMENTS
               if name != "New")  # no staff label leaks into a customer's text
    bad = tmp_path / "meanings.yaml"
    bad.write_text("meanings:\n  Champions: 'hi'\n  Sleepers: 'zz'\n")
    with pytest.raises(ConfigError, match=r"meanings.yaml:3: unknown segment 'Sleepers'"):
        load_meanings(bad)
