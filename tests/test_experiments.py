"""Experiments between recommender variants: the statistics on known numbers, and the
service end to end on a copy of the staff shop (assignment, exposure logging, status,
stop, bad input)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.core.errors import InputError
from assistant.insights.experiments import (
    compare_means,
    compare_rates,
    holm,
    sample_size,
    session_outcomes,
    verdict,
)
from assistant.service.assistant import AssistantService
from assistant.service.experiments import arm_weights
from tests.conftest import shop_service, staff_copy


def test_sample_size_matches_the_textbook():
    # Fleiss (no continuity correction): 10 % -> 12 %, alpha 0.05, power 0.8: 3,841 per arm
    assert sample_size(0.10, 0.02) == 3841
    assert sample_size(0.10, 0.05) < sample_size(0.10, 0.02) < sample_size(0.10, 0.01)
    assert sample_size(0.10, 0.02, power=0.9) > 3841
    for bad in ((0.0, 0.02), (0.1, 0.0), (0.95, 0.1)):
        with pytest.raises(InputError):
            sample_size(*bad)


def test_comparisons_and_holm():
    c = compare_rates("ctr", (100, 1000), (150, 1000))
    assert c.difference == pytest.approx(0.05) and c.low < 0.05 < c.high
    assert c.p_value < 0.01
    same = compare_rates("ctr", (10, 100), (10, 100))
    assert same.difference == 0 and same.p_value == pytest.approx(1.0)
    assert compare_rates("ctr", (0, 0), (3, 10)).p_value is None
    m = compare_means("rating", [3, 4, 5, 4], [4, 5, 5, 5])
    assert m.difference == pytest.approx(0.75) and 0 < m.p_value < 1
    assert compare_means("rating", [3], [4, 5]).p_value is None
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([None, 0.02]) == [None, 0.02]


def test_verdict_guards_against_peeking():
    strong = compare_rates("ctr", (100, 1000), (160, 1000))
    weak = compare_rates("ctr", (100, 1000), (125, 1000))  # p ~ 0.09
    early = verdict([strong], planned=5000)
    assert early["state"] == "significant" and early["bound"] == pytest.approx(0.005)
    assert verdict([weak], planned=5000)["state"] == "early"
    assert "peeking" in verdict([weak], planned=5000)["note"]
    done = verdict([weak], planned=1000)
    assert done["state"] == "not significant"
    both = verdict([strong, weak], planned=1000)
    assert both["comparisons"][0]["p_adjusted"] == pytest.approx(2 * strong.p_value)


def test_session_outcomes_are_per_session():
    events = pd.DataFrame([
        ("2011-06-01T10:00:00+00:00", "impression", "s1", "c1", "x", "exp/A", None),
        ("2011-06-01T10:00:00+00:00", "impression", "s1", "c1", "y", "exp/A", None),
        ("2011-06-01T10:01:00+00:00", "reaction", "s1", "c1", "x", None, "like"),
        ("2011-06-01T11:00:00+00:00", "impression", "s2", None, "x", "exp/B", None),
        ("2011-06-01T11:05:00+00:00", "satisfaction", "s2", None, None, None, "5"),
        ("2011-06-01T12:00:00+00:00", "impression", "s3", None, "x", "other/A", None),
    ], columns=["at", "kind", "session_id", "customer_id", "item", "variant", "value"])
    lines = pd.DataFrame({"customer": ["c1"], "item": ["y"], "amount": [12.5],
                          "timestamp": pd.to_datetime(["2011-06-05"]), "is_return": [False]})
    out = session_outcomes(events, lines, prefix="exp/").set_index("session_id")
    assert list(out.index) == ["s1", "s2"]
    assert out.loc["s1", "arm"] == "A" and out.loc["s1", "engaged"]
    assert out.loc["s1", "bought"] and out.loc["s1", "revenue"] == 12.5
    assert out.loc["s2", "rating"] == 5 and not out.loc["s2", "linked"]


def test_arm_specs():
    served = {"returning": {"repeat": 0.75, "similar": 1.0}, "returning_new": {},
              "cold": {"popularity": 0.2}}
    b = arm_weights(served, "served, segment=0.5, without:similar")
    assert b["returning"] == {"repeat": 0.75, "similar": 0.0, "segment": 0.5}
    assert b["cold"]["segment"] == 0.5 and served["returning"]["similar"] == 1.0
    for bad, why in (("popular", "does not start with 'served'"),
                     ("served,colour=1", "no recommender 'colour'"),
                     ("served,segment=11", "from 0 to 10"), ("served,segment", "not a change")):
        with pytest.raises(InputError, match=why):
            arm_weights(served, bad)


# --------------------------------------------------------------------------- the service
@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> tuple[Path, Path]:
    return staff_copy(staff_shop, tmp_path_factory.mktemp("experiments") / "shop")


@pytest.fixture
def svc(shop: tuple[Path, Path]) -> AssistantService:
    return shop_service(shop)


def test_an_experiment_from_start_to_stop(svc) -> None:
    with pytest.raises(InputError, match="needs ops"):
        svc.experiment_start("alex", "boost", {"A": "served", "B": "served,segment=0.5"},
                             base_rate=0.1, mde=0.05)
    with pytest.raises(InputError, match="no recommender"):
        svc.experiment_start("olivia", "boost", {"A": "served", "B": "served,colour=1"},
                             base_rate=0.1, mde=0.05)
    assert svc.store.experiments() == []  # nothing saved
    status = svc.experiment_start("olivia", "boost", {"A": "served",
                                                      "B": "served,segment=2,without:als"},
                                  base_rate=0.1, mde=0.05)
    assert status["experiment"]["status"] == "running"
    assert status["verdict"]["planned_per_arm"] == sample_size(0.1, 0.05)
    with pytest.raises(InputError, match="is running"):
        svc.experiment_start("olivia", "other", {"A": "served", "B": "served"},
                             base_rate=0.1, mde=0.05)
    arms = {}
    for _ in range(30):
        sid = svc.new_session()
        first = svc.experiments.assign(sid)
        assert svc.experiments.assign(sid) == first  # sticky
        arms[sid] = first.arm
        cards = svc.recommend(sid)
        shown = [e for e in svc.store.events(kinds=("impression",)) if e["session_id"] == sid]
        assert {e["variant"] for e in shown} == {f"boost/{first.arm}"}
        assert [e["item"] for e in shown] == [c["id"] for c in cards.items]
    assert set(arms.values()) == {"A", "B"}
    status = svc.experiment_status("olivia", "boost")
    assert sum(a["sessions"] for a in status["arms"]) == 30
    assert status["verdict"]["state"] in ("early", "significant")
    json.dumps(status)
    stopped = svc.experiment_stop("olivia", "boost")
    assert stopped["experiment"]["status"] == "stopped"
    assert svc.experiments.assign(svc.new_session()) is None
    with pytest.raises(InputError, match="stopped already"):
        svc.experiment_stop("olivia", "boost")
    with pytest.raises(InputError, match="no experiment 'nope'"):
        svc.experiment_status("olivia", "nope")
    with pytest.raises(InputError, match="called 'boost' already"):
        svc.experiment_start("olivia", "boost", {"A": "served", "B": "served"},
                             base_rate=0.1, mde=0.05)


def test_an_experiment_with_no_traffic_reads_as_early(svc) -> None:
    svc.experiment_start("olivia", "quiet", {"A": "served", "B": "served,without:similar"},
                         base_rate=0.2, mde=0.05, share=0.5)
    status = svc.experiment_status("olivia", None)
    assert [a["sessions"] for a in status["arms"]] == [0, 0]
    assert status["verdict"]["state"] == "early"
    assert all(c["p_value"] is None for c in status["verdict"]["comparisons"])
    svc.experiment_stop("olivia", "quiet", "done")


def test_cli(shop, monkeypatch) -> None:
    data, orders = shop
    monkeypatch.setenv("TAILOR_DATA_DIR", str(data))
    monkeypatch.setenv("TAILOR_ORDERS", str(orders))
    runner = CliRunner()
    size = runner.invoke(app, ["experiments", "size", "--base-rate", "0.1", "--mde", "0.02"])
    assert size.exit_code == 0 and "3,841 sessions per arm" in size.output
    started = runner.invoke(app, ["experiments", "start", "cli-test", "--arm", "A=served",
                                  "--arm", "B=served,segment=0.5", "--base-rate", "0.1",
                                  "--mde", "0.05", "--json"])
    assert started.exit_code == 0, started.output
    assert json.loads(started.output[started.output.index("{"):])["experiment"]["started_by"] \
        .startswith("cli:")
    status = runner.invoke(app, ["experiments", "status"])
    assert status.exit_code == 0 and "cli-test (running" in status.output
    assert runner.invoke(app, ["experiments", "stop", "cli-test"]).exit_code == 0
    again = runner.invoke(app, ["experiments", "stop", "cli-test"])
    assert again.exit_code != 0 and "stopped already" in again.output
    bad = runner.invoke(app, ["experiments", "start", "x", "--arm", "A", "--base-rate", "0.1",
                              "--mde", "0.02"])
    assert bad.exit_code != 0 and "NAME=SPEC" in bad.output


def test_the_tab_starts_reads_and_stops_an_experiment(svc) -> None:
    from types import SimpleNamespace

    from assistant.ui import insights as tab

    ops, agent = SimpleNamespace(username="olivia"), SimpleNamespace(username="alex")
    note, fig = tab.experiment_action(svc, "start", "tab-test", "served", "served,segment=0.5",
                                      "ctr", 0.1, 0.05, ops)
    assert "**tab-test** (running" in note and [t.type for t in fig.data] == ["bar", "bar"]
    note, _ = tab.experiment_action(svc, "status", "", "", "", "ctr", None, None, ops)
    assert "**early**" in note
    refused, _ = tab.experiment_action(svc, "stop", "tab-test", "", "", "ctr", None, None, agent)
    assert "needs ops" in refused
    note, _ = tab.experiment_action(svc, "stop", "tab-test", "", "", "ctr", None, None, ops)
    assert "(stopped" in note
    note, _ = tab.experiment_action(svc, "stop", "tab-test", "", "", "ctr", None, None, ops)
    assert "stopped already" in note
    note, _ = tab.experiment_action(svc, "start", "t2", "served", "nonsense", "ctr", 0.1, 0.05,
                                    ops)
    assert "does not start with 'served'" in note


def test_an_arm_ranks_with_its_weights_on_the_same_fitted_model(svc) -> None:
    from assistant.recommend.personal import Profile

    base = svc.parts.recommender()
    served = svc.parts.served_weights()["weights"]
    popular = base.with_weights(arm_weights(
        served, "served,without:repeat,without:similar,without:als,popularity=1"))
    assert popular.model.components_ is base.model.components_  # nothing refitted
    assert base.model.weights_["returning"]["repeat"] == served["returning"]["repeat"]
    customer = str(svc.orders()["customer"].iloc[0])
    person = Profile(customer_id=customer)
    mine = [r.item for r in base.recommend(person, 5, exclude_seen=False)]
    theirs = [r.item for r in popular.recommend(person, 5, exclude_seen=False)]
    assert mine != theirs
    top = base.model.data_.popularity.argsort()[::-1]
    assert theirs[0] in {str(base.model.data_.items[i]) for i in top[:10]}


def test_simulated_traffic_runs_an_experiment_end_to_end(svc) -> None:
    orders = svc.orders()
    middle = orders["timestamp"].min() + (orders["timestamp"].max()
                                          - orders["timestamp"].min()) / 2
    start = f"{middle:%Y-%m-%d}"
    svc.experiment_start("olivia", "sim-test", {
        "A": "served", "B": "served,without:item_knn,without:similar,without:als,popularity=1"},
        base_rate=0.05, mde=0.05)
    out = svc.simulation.run(sessions=60, start=start, days=10, seed=3)
    assert out["sessions"] == 60 and out["cards_shown"] > 0
    assert set(out["variants"]) == {"sim-test/A", "sim-test/B"}
    events = [e for e in svc.store.events(kinds=("impression",))
              if e["session_id"].startswith(f"SIMULATED-{out['run']}-")]
    assert len(events) == out["cards_shown"]
    assert all(start <= e["at"][:10] for e in events)  # the orders' time, not today's
    status = svc.experiment_status("olivia", "sim-test")
    assert sum(a["sessions"] for a in status["arms"]) == 60
    assert status["simulated_sessions"] == 60
    funnel = svc.insights_report("olivia", "funnel")
    assert funnel["simulated_sessions"] >= 60 and "SIMULATED" in funnel["note"]
    # simulated events carry a real customer's id: erasing the customer erases them
    someone = events[0]["customer_id"]
    counts = svc.privacy.erase_customer(someone, actor="test")
    assert counts["events"] >= 1
    assert not [e for e in svc.store.events() if e["customer_id"] == someone]
    svc.experiment_stop("olivia", "sim-test")
    with pytest.raises(InputError, match="--sessions"):
        svc.simulation.run(sessions=0)
    with pytest.raises(InputError, match="outside the orders"):
        svc.simulation.run(sessions=5, start="2030-01-01")


def test_the_tab_simulates_traffic_for_the_running_experiment(svc) -> None:
    from types import SimpleNamespace

    from assistant.ui import insights as tab

    ops, agent = SimpleNamespace(username="olivia"), SimpleNamespace(username="alex")
    svc.experiment_start("olivia", "tab-sim", {"A": "served", "B": "served,popularity=2"},
                         base_rate=0.1, mde=0.05)
    note, fig = tab.simulate(svc, 40, "", ops)  # the short history: the cut is its middle
    assert "40 simulated sessions written" in note and "**tab-sim** (running" in note
    assert "40 of these sessions are SIMULATED" in note and fig.data
    refused, _ = tab.simulate(svc, 40, "", agent)
    assert "needs ops" in refused
    bad, _ = tab.simulate(svc, 0, "", ops)
    assert "--sessions 0 must be from 1" in bad
    svc.experiment_stop("olivia", "tab-sim")
