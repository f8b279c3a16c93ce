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
    customer_outcomes,
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
    assert status.exit_code == 0 and "cli-test (running, recommender" in status.output
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
    assert "**tab-test** (running, recommender" in note
    assert [t.type for t in fig.data] == ["bar", "bar"]
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
    assert "40 simulated sessions written" in note and "**tab-sim** (running, recommender" in note
    assert "40 of these sessions are SIMULATED" in note and fig.data
    refused, _ = tab.simulate(svc, 40, "", agent)
    assert "needs ops" in refused
    bad, _ = tab.simulate(svc, 0, "", ops)
    assert "--sessions 0 must be from 1" in bad
    svc.experiment_stop("olivia", "tab-sim")


# --------------------------------------------------------------------------- policy experiments
def test_customer_outcomes_are_per_customer_from_the_first_exposure():
    events = pd.DataFrame([
        ("2011-06-01T10:00:00+00:00", "exposure", None, "c1", "pol/A"),
        ("2011-06-20T10:00:00+00:00", "exposure", None, "c1", "pol/A"),  # later: ignored
        ("2011-06-02T10:00:00+00:00", "exposure", None, "c2", "pol/B"),
        ("2011-06-02T10:00:00+00:00", "exposure", None, "c3", "other/B"),
        ("2011-06-02T10:00:00+00:00", "impression", "s1", "c3", "pol/B"),
    ], columns=["at", "kind", "session_id", "customer_id", "variant"])
    lines = pd.DataFrame({"customer": ["c1", "c1", "c1", "c2"],
                          "timestamp": pd.to_datetime(["2011-06-10", "2011-06-15",
                                                       "2011-07-15", "2011-05-30"]),
                          "amount": [10.0, 5.0, 99.0, 7.0],
                          "is_return": [False, False, False, False]})
    drafts = pd.DataFrame({"customer_id": ["c1", "c1", "c2"],
                           "created_at": ["2011-06-01T10:05:00+00:00",
                                          "2011-05-01T10:00:00+00:00",  # before: ignored
                                          "2011-06-02T10:01:00+00:00"],
                           "status": ["final", "final", "discarded"],
                           "feedback": [1.0, None, None]})
    out = customer_outcomes(events, lines, drafts, prefix="pol/").set_index("customer_id")
    assert list(out.index) == ["c1", "c2"]
    # c1: two orders within 30 days of 1 June (the 15 July one is outside), a sent draft
    assert out.loc["c1", "arm"] == "A" and out.loc["c1", "bought"]
    assert out.loc["c1", "revenue"] == 15.0
    assert out.loc["c1", "sent"] == 1.0 and out.loc["c1", "liked"] == 1.0
    # c2: ordered only before the exposure; a discarded, unrated draft
    assert not out.loc["c2", "bought"] and out.loc["c2", "revenue"] == 0.0
    assert out.loc["c2", "sent"] == 0.0 and pd.isna(out.loc["c2", "liked"])
    empty = customer_outcomes(events, lines, drafts, prefix="none/")
    assert empty.empty and "arm" in empty.columns


def test_policy_variants_are_checked_when_loaded(tmp_path) -> None:
    from assistant.core.errors import ConfigError
    from assistant.support.policies import load_policies

    policies = load_policies()
    assert policies.variant("at-risk-10").promises["discount"] == 10
    assert policies.for_segment("At Risk").promises["discount"] == 15
    with pytest.raises(InputError, match="no policy variant 'nope'"):
        policies.variant("nope")
    base = "default:\n  text: Hello.\nvariants:\n"
    for body, why in (("  x:\n    segment: Champs\n    text: Hi.\n",
                       r"policies.yaml:4: unknown segment 'Champs' in variant 'x'"),
                      ("  Bad Name:\n    segment: Lost\n    text: Hi.\n",
                       "'Bad Name' is not a variant name"),
                      ("  x:\n    text: Hi.\n", "variants.x.segment: Field required")):
        path = tmp_path / "policies.yaml"
        path.write_text(base + body)
        with pytest.raises(ConfigError, match=why):
            load_policies(path)


def _in_segment(svc, segment: str, n: int) -> list[str]:
    seg = svc.parts.segment_model().customers["rfm_segment"]
    return [str(c) for c in seg.index[seg == segment][:n]]


def _draft(svc, customer: str) -> dict:
    run = svc.start_draft(agent="alex", customer_id=customer,
                          ticket="My order arrived damaged, what can you do?")
    return run.collect()


def test_a_policy_experiment_serves_each_arm_its_policy_and_counts_customers(svc) -> None:
    with pytest.raises(InputError, match="needs a segment"):
        svc.experiment_start("olivia", "pol", {"A": "served", "B": "at-risk-10"},
                             kind="policy", base_rate=0.3, mde=0.1)
    with pytest.raises(InputError, match="is for At Risk, not Lost"):
        svc.experiment_start("olivia", "pol", {"A": "served", "B": "at-risk-10"},
                             kind="policy", segment="Lost", base_rate=0.3, mde=0.1)
    with pytest.raises(InputError, match="no policy variant 'at-risk-5'"):
        svc.experiment_start("olivia", "pol", {"A": "served", "B": "at-risk-5"},
                             kind="policy", segment="At Risk", base_rate=0.3, mde=0.1)
    with pytest.raises(InputError, match="Unknown metric 'ctr' for a policy"):
        svc.experiment_start("olivia", "pol", {"A": "served", "B": "at-risk-10"},
                             kind="policy", segment="At Risk", metric="ctr",
                             base_rate=0.3, mde=0.1)
    assert svc.store.experiment("pol") is None  # nothing saved
    status = svc.experiment_start("olivia", "pol", {"A": "served", "B": "at-risk-10"},
                                  kind="policy", segment="At Risk", base_rate=0.3, mde=0.1)
    assert status["experiment"]["kind"] == "policy" and status["unit"] == "customers"
    assert status["experiment"]["metric"] == "conversion"
    size = len(_in_segment(svc, "At Risk", 100_000))
    assert status["segment_customers"] == size
    needed = 2 * status["verdict"]["planned_per_arm"]
    assert (status["capacity_note"] is None) == (size >= needed)
    if size < needed:
        assert f"holds {size:,} customers and the plan needs {needed:,}" in \
            status["capacity_note"]
    # a recommender experiment may run beside it (one of each kind)
    svc.experiment_start("olivia", "rec", {"A": "served", "B": "served,segment=0.5"},
                         base_rate=0.1, mde=0.05)
    with pytest.raises(InputError, match="policy experiment 'pol' is running"):
        svc.experiment_start("olivia", "pol2", {"A": "served", "B": "at-risk-10"},
                             kind="policy", segment="At Risk", base_rate=0.3, mde=0.1)
    exp = svc.store.experiment("pol")
    at_risk = _in_segment(svc, "At Risk", 8)
    arms = {c: svc.experiments.arm_of(exp, c) for c in at_risk}
    assert set(arms.values()) == {"A", "B"}
    for customer in at_risk:
        limit = 15 if arms[customer] == "A" else 10
        side = svc.desk_customer("alex", customer)
        assert side["policy"]["variant"] == f"pol/{arms[customer]}"
        assert side["policy"]["promises"]["discount"] == limit
        draft = _draft(svc, customer)
        assert draft["policy"]["promises"]["discount"] == limit
    # another segment's customer: the segment's own policy, no exposure
    other = _in_segment(svc, "Champions", 1)[0]
    assert "variant" not in _draft(svc, other)["policy"]
    exposed = svc.store.events(kinds=("exposure",))
    assert sorted(e["customer_id"] for e in exposed) == sorted(at_risk)
    assert {e["variant"] for e in exposed} == {"pol/A", "pol/B"}
    drafts = svc.store.drafts_for(at_risk[0])
    svc.save_final_draft(drafts[0]["id"], "alex", "Sorry! A replacement is on its way.")
    status = svc.experiment_status("olivia", "pol")
    assert sum(a["customers"] for a in status["arms"]) == 8
    assert status["simulated_customers"] == 0
    sent = {a["arm"]: a["sent"] for a in status["arms"]}
    assert sent[arms[at_risk[0]]]["count"] == 1
    assert sum(s["n"] for s in sent.values()) == 8
    assert status["verdict"]["state"] == "early" and "customers per arm" in \
        status["verdict"]["note"]
    json.dumps(status)
    # the variant taken out of data/policies.yaml mid-experiment: drafts go on under the
    # segment's own policy (unmarked, so no exposure is counted for them)
    import dataclasses

    b_customer = next(c for c in at_risk if arms[c] == "B")
    shipped = svc.parts.policies
    svc.parts.__dict__["policies"] = dataclasses.replace(shipped, variants={})
    try:
        side = svc.desk_customer("alex", b_customer)["policy"]
        assert "variant" not in side and side["promises"]["discount"] == 15
    finally:
        svc.parts.__dict__["policies"] = shipped
    svc.experiment_stop("olivia", "pol")
    svc.experiment_stop("olivia", "rec")
    assert "variant" not in svc.desk_customer("alex", at_risk[0])["policy"]


def test_simulated_exposures_are_an_a_a_check(svc) -> None:
    with pytest.raises(InputError, match="No policy experiment is running"):
        svc.simulation.exposures(customers=10)
    svc.experiment_start("olivia", "pol-sim", {"A": "served", "B": "at-risk-10"},
                         kind="policy", segment="At Risk", base_rate=0.3, mde=0.1)
    orders = svc.orders()
    middle = orders["timestamp"].min() + (orders["timestamp"].max()
                                          - orders["timestamp"].min()) / 2
    out = svc.simulation.exposures(customers=400, start=f"{middle:%Y-%m-%d}", days=20, seed=1)
    assert 0 < out["customers"] <= min(400, out["in_segment"])
    assert sum(out["variants"].values()) == out["customers"]
    status = svc.experiment_status("olivia", "pol-sim")
    assert status["simulated_customers"] == out["customers"]
    assert sum(a["customers"] for a in status["arms"]) == out["customers"]
    bought = sum(a["conversion"]["count"] for a in status["arms"])
    # the credited orders are the customers' real ones in the 30 days after exposure
    assert 0 < bought < out["customers"]
    assert status["verdict"]["state"] != "significant"  # the arms cannot differ in truth
    svc.experiment_stop("olivia", "pol-sim")


def test_cli_policy_experiment(shop, monkeypatch) -> None:
    data, orders = shop
    monkeypatch.setenv("TAILOR_DATA_DIR", str(data))
    monkeypatch.setenv("TAILOR_ORDERS", str(orders))
    runner = CliRunner()
    started = runner.invoke(app, ["experiments", "start", "cli-pol", "--kind", "policy",
                                  "--segment", "At Risk", "--arm", "A=served",
                                  "--arm", "B=at-risk-10", "--base-rate", "0.3",
                                  "--mde", "0.1"])
    assert started.exit_code == 0, started.output
    assert "cli-pol (running, policy on At Risk" in started.output
    simulated = runner.invoke(app, ["insights", "simulate", "--policy", "--customers", "50",
                                    "--json"])
    assert simulated.exit_code == 0, simulated.output
    assert json.loads(simulated.output[simulated.output.index("{"):])["segment"] == "At Risk"
    status = runner.invoke(app, ["experiments", "status", "cli-pol"])
    assert status.exit_code == 0 and " customers  sent " in status.output
    assert runner.invoke(app, ["experiments", "stop", "cli-pol"]).exit_code == 0
    bad = runner.invoke(app, ["experiments", "start", "x", "--kind", "bandit", "--arm",
                              "A=served", "--arm", "B=served", "--base-rate", "0.1",
                              "--mde", "0.02"])
    assert bad.exit_code != 0 and "Unknown experiment kind" in bad.output


def test_the_tab_runs_a_policy_experiment(svc) -> None:
    from types import SimpleNamespace

    from assistant.ui import insights as tab

    ops = SimpleNamespace(username="olivia")
    arm_b, segment, metric = tab.kind_defaults("policy")
    assert (arm_b["value"], segment["value"], metric["value"]) == \
        ("at-risk-10", "At Risk", "conversion")
    assert tab.kind_defaults("recommender")[1]["interactive"] is False
    refused, _ = tab.experiment_action(svc, "start", "tab-pol", "served", "at-risk-10",
                                       "conversion", 0.3, 0.1, ops, "policy", "")
    assert "needs a segment" in refused
    note, fig = tab.experiment_action(svc, "start", "tab-pol", "served", "at-risk-10",
                                      "conversion", 0.3, 0.1, ops, "policy", "At Risk")
    assert "**tab-pol** (running, policy on At Risk" in note and "| customers |" in note
    assert [t.type for t in fig.data] == ["bar", "bar"]
    note, _ = tab.simulate(svc, 60, "", ops, lambda *a, **k: None, "policy")
    assert "customers in At Risk" in note and "are SIMULATED" in note and "A/A" in note
    status = svc.experiment_status("olivia", "tab-pol")
    assert status["simulated_customers"] > 0
    note, _ = tab.experiment_action(svc, "stop", "tab-pol", "", "", "", None, None, ops)
    assert "(stopped, policy on At Risk" in note
