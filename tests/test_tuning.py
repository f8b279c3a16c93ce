"""Per-shop tuning (`assistant recommend tune`): weights tuned on the shop's own file, saved
as a versioned bundle with a manifest, served by the app only for that very file, shown in
the Segments tab; bad files leave the weights in use alone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from assistant.core.config import load_settings
from assistant.infra.llm import ScriptedModel
from assistant.orders.tables import file_sha256
from assistant.recommend import tuning
from assistant.recommend.algorithms import DEFAULT_WEIGHTS, MODES
from assistant.recommend.evaluation import FACTOR_GRID
from assistant.service.assistant import AssistantService
from assistant.ui import segments
from tests.test_evaluation import write_shop

runner = CliRunner()


def tune_cli(args: list[str], data_dir: Path):
    from assistant.cli import app

    return runner.invoke(app, ["recommend", "tune", *args],
                         env={"TAILOR_DATA_DIR": str(data_dir)})


def test_tune_saves_weights_the_app_serves_for_that_file_only(tmp_path):
    orders = write_shop(tmp_path / "orders.csv")
    data_dir = tmp_path / "data"
    result = tune_cli(["--orders", str(orders), "--k", "5", "--json"], data_dir)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["kind"] == "recommender" and manifest["metric"] == "ndcg@5"
    assert manifest["data"]["sha256"] == file_sha256(orders)
    assert manifest["data"]["source"] == "orders.csv" and manifest["created_at"]
    assert set(manifest["weights"]) == set(MODES)
    assert all(0 <= v <= 1 for v in manifest["validation"].values())
    assert manifest["params"]["als"]["factors"] in FACTOR_GRID
    assert Path(manifest["path"]).is_dir()

    artifacts = data_dir / "artifacts"
    served = tuning.served_weights(artifacts, orders)
    assert served["source"] == "tuned" and served["weights"] == manifest["weights"]

    # the running app fits its hybrid with them, and the Segments tab says so
    settings = load_settings(data_dir=data_dir, llm_provider="scripted", orders=orders)
    svc = AssistantService.from_settings(settings, model=ScriptedModel())
    model = svc.parts.recommender().model
    assert model.weights_ == {m: {n: float(manifest["weights"][m].get(n, 0.0))
                                  for n in model.components_} for m in MODES}
    assert model.components_["als"].factors == manifest["params"]["als"]["factors"]
    text = segments.weights_markdown(svc.parts.served_weights())
    assert "**Recommender weights served:** tuned: tuned " in text
    assert "| returning | " in text and "validation ndcg@5" in text

    # another file (one more row): the built-in weights, and why
    other = tmp_path / "other.csv"
    frame = pd.read_csv(orders)
    pd.concat([frame, frame.tail(1)]).to_csv(other, index=False)
    served = tuning.served_weights(artifacts, other)
    assert served["source"] == "built-in" and served["weights"] == DEFAULT_WEIGHTS
    assert "are for another file (orders.csv, SHA-256 " in served["note"]
    assert "run recommend tune on the file served now" in served["note"]

    # a bundle this version cannot use (an unknown parameter) never stops the app
    bad = {**manifest, "params": {"als": {"factorz": 8}}}
    for key in ("path", "kind", "created_at", "libraries", "models", "tables"):
        bad.pop(key)
    tuning.save(artifacts, bad)
    served = tuning.served_weights(artifacts, orders)
    assert served["source"] == "built-in" and "do not fit this version" in served["note"]


def test_a_file_that_cannot_be_tuned_keeps_the_weights_in_use(tmp_path):
    orders = write_shop(tmp_path / "orders.csv")
    data_dir = tmp_path / "data"
    assert tune_cli(["--orders", str(orders), "--k", "5"], data_dir).exit_code == 0
    before = tuning.load(data_dir / "artifacts")

    one_day = tmp_path / "one_day.csv"
    frame = pd.read_csv(orders)
    frame["InvoiceDate"] = "2010-12-01 10:00:00"
    frame.to_csv(one_day, index=False)
    result = tune_cli(["--orders", str(one_day)], data_dir)
    assert result.exit_code != 0
    assert "cannot be split into a training and a validation part" in result.output
    assert "Traceback" not in result.output
    assert tuning.load(data_dir / "artifacts") == before

    missing = tune_cli(["--orders", str(tmp_path / "nope.csv")], data_dir)
    assert missing.exit_code != 0 and "Traceback" not in missing.output
    assert tuning.load(data_dir / "artifacts") == before


def test_no_tuned_weights_means_the_built_in_ones(tmp_path):
    orders = write_shop(tmp_path / "orders.csv")
    served = tuning.served_weights(tmp_path / "artifacts", orders)
    assert served["source"] == "built-in" and served["weights"] == DEFAULT_WEIGHTS
    assert "tuned on the shipped Online Retail data" in served["note"]
    text = segments.weights_markdown(served)
    assert "built-in" in text and "| returning new |" in text
