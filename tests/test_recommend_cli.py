"""`assistant recommend evaluate` on small files written to tmp_path (JSON shape, table,
bad input). Uses the local MiniLM for the content recommender (a few dozen descriptions)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.test_evaluation import write_ratings, write_shop

runner = CliRunner()
METRICS = {"precision@5", "recall@5", "f1@5", "ndcg@5", "map@5", "hit_rate@5", "coverage",
           "novelty", "diversity"}
NAMES = {"popularity", "segment", "repeat", "item_knn", "content", "similar", "als", "hybrid"}


def app_():
    from assistant.cli import app

    return app


def invoke(args: list[str], tmp_path):
    return runner.invoke(app_(), ["recommend", "evaluate", *args],
                         env={"TAILOR_DATA_DIR": str(tmp_path / "data")})


def test_json_shape_with_both_settings_and_cold_start(tmp_path, monkeypatch):
    from assistant.recommend import algorithms

    monkeypatch.setattr(algorithms, "_MEMO", {})  # embed here, not from another test's memo
    path = write_shop(tmp_path / "orders.csv")
    result = invoke(["--interactions", str(path), "--split", "chronological", "--split-date",
                     "2010-09-01", "--k", "5", "--json"], tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("recommenders", "recommenders_new_items"):
        assert set(report[key]) == NAMES
        assert all(set(m) == METRICS for m in report[key].values())
    assert set(report["cold_start"]) == {"popularity", "segment", "content", "similar",
                                         "hybrid"}
    assert report["cold_start"]["hybrid"]["ndcg@5"] > report["cold_start"]["popularity"][
        "ndcg@5"]
    users = report["users"]
    assert users["recommenders"] == 60 and users["cold_start"] == 20
    assert 0 < users["recommenders_new_items"] <= 60  # those who bought something new
    assert report["split"]["split_date"] == "2010-09-01"
    assert (tmp_path / "data" / "cache").is_dir()  # description embeddings are cached


def test_table_with_one_setting(tmp_path):
    path = write_shop(tmp_path / "orders.csv")
    result = invoke(["--interactions", str(path), "--split-date", "2010-09-01", "--k", "5",
                     "--exclude-seen"], tmp_path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "already-bought items excluded" in out and "already-bought items allowed" not in out
    assert "ndcg@5" in out and "item-kNN (co-purchase)" in out and "cold start" in out
    assert "hybrid weights (tuned on the validation split" in out


def test_ratings_with_map_and_random_split(tmp_path):
    path = write_ratings(tmp_path / "ratings.csv")
    result = invoke(["--interactions", str(path), "--map", "user=uid", "--map", "item=movie",
                     "--map", "rating=stars", "--map", "time=ts", "--split", "random-per-user",
                     "--test-fraction", "0.25", "--k", "5", "--include-seen", "--json"],
                    tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["recommenders"]) == NAMES and "recommenders_new_items" not in report
    assert report["cold_start"] == {} and report["data"]["kind"] == "interactions"


def test_bad_input_is_an_error_with_a_hint(tmp_path):
    path = write_ratings(tmp_path / "ratings.csv")
    result = invoke(["--interactions", str(path), "--map", "user=customer"], tmp_path)
    assert result.exit_code == 2
    assert "error: Column 'customer' (mapped to user)" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.output

    single = tmp_path / "one.csv"
    single.write_text("user,item,time\n1,a,2011-01-01\n1,b,2011-02-01\n")
    result = invoke(["--interactions", str(single)], tmp_path)
    assert result.exit_code == 2 and "single user" in result.stderr

    result = invoke(["--interactions", str(path), "--map", "user=uid", "--map", "item=movie",
                     "--split", "sideways"], tmp_path)
    assert result.exit_code == 2 and "Unknown split 'sideways'" in result.stderr

    result = invoke(["--interactions", str(path), "--map", "user=uid", "--map", "item=movie",
                     "--map", "time=ts", "--split-date", "1999-01-01"], tmp_path)
    assert result.exit_code == 2 and "leaves one side empty" in result.stderr


def test_without_leaves_a_recommender_out_and_names_the_known_ones(tmp_path):
    path = write_shop(tmp_path / "orders.csv")
    result = invoke(["--interactions", str(path), "--split-date", "2010-09-01", "--k", "5",
                     "--exclude-seen", "--without", "segment", "--without", "content",
                     "--json"], tmp_path)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["recommenders_new_items"]) == NAMES - {"segment", "content"}
    assert all("segment" not in w for w in report["weights"].values())
    bad = invoke(["--interactions", str(path), "--without", "segments"], tmp_path)
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "--without segments: no such recommender." in bad.output
    assert "Leave out any of: popularity, segment, repeat" in bad.output
