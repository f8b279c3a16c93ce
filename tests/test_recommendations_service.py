"""Recommendations in the chat service: real segments and orders (the first 60,000 rows of
the shipped data), profiles in a real Chroma, the message checked by grounding."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from assistant.core.config import REPO_ROOT, load_settings
from assistant.core.errors import InputError
from assistant.infra.llm import ScriptedModel
from assistant.service.assistant import AssistantService
from assistant.service.chat import final_text
from assistant.service.shopping import REPLACE


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    data = tmp_path_factory.mktemp("recdata")
    orders = data / "orders.csv"
    pd.read_csv(REPO_ROOT / "data" / "online_retail.csv.gz", nrows=60_000).to_csv(
        orders, index=False)
    svc = make(data, orders)
    svc.rebuild_segments(orders)
    svc.recommender()  # fit once; later services of the module refit from the cache
    return data, orders


def make(data, orders, replies=None) -> AssistantService:
    settings = load_settings(data_dir=data, llm_provider="scripted", orders=orders)
    return AssistantService.from_settings(settings, model=ScriptedModel(replies))


def answer_all(svc: AssistantService, sid: str, answers: dict[str, str]) -> dict:
    out = svc.guided_view(sid)
    for _ in range(15):
        qid = out.turn.question_id
        if qid is None:
            break
        replies = out.turn.quick_replies
        out = svc.questionnaire(sid, answers.get(qid, replies[0] if replies else "skip"))
    return out


ANSWERS = {"buyer_type": "for myself", "interests": "candles and christmas",
           "budget": "about 5 pounds", "region": "UK"}


def test_nothing_known_gives_labelled_popular_items(shop):
    svc = make(*shop)
    out = svc.recommend(svc.new_session())
    assert out.popular and len(out.items) == svc.settings.recommendations
    assert all(i["fallback"] and "we know too little" in i["reasons"][0] for i in out.items)
    assert {"id", "name", "price", "score", "reasons"} <= set(out.items[0])


def test_answers_steer_items_with_reasons_and_budget(shop):
    svc = make(*shop)
    sid = svc.new_session()
    answer_all(svc, sid, ANSWERS)
    out = svc.recommend(sid)
    assert not out.popular
    reasons = " ".join(r for i in out.items for r in i["reasons"])
    assert "candles and lights" in reasons or "christmas" in reasons, reasons
    cheap = [i for i in out.items if i["price"] is not None and i["price"] <= 5]
    assert cheap and all("within your budget of £5" in i["reasons"] for i in cheap)
    assert out.items[: len(cheap)] == cheap  # within budget first


def test_reactions_change_the_next_recommendations(shop):
    svc = make(*shop)
    sid = svc.new_session()
    answer_all(svc, sid, ANSWERS)
    first = svc.recommend(sid).items
    gone = first[0]["id"]
    after = svc.item_feedback(sid, gone, "not_for_me").items
    assert gone not in [i["id"] for i in after]
    svc.item_feedback(sid, after[0]["id"], "like")
    assert "Likes:" in svc.store.load_profile(sid)["document"]
    with pytest.raises(InputError, match="not a reaction"):
        svc.item_feedback(sid, gone, "love")
    with pytest.raises(InputError, match="no item"):
        svc.item_feedback(sid, "NOPE-123", "like")


def test_grounded_message_is_kept_and_invented_one_replaced(shop):
    data, orders = shop
    probe = make(data, orders)
    sid = probe.new_session()
    answer_all(probe, sid, ANSWERS)
    items = probe.recommend(sid).items
    name, price = items[0]["name"].title(), items[0]["price"]
    good = f"You'll love the {name} at £{price:.2f}, a cosy pick for you."
    svc = make(data, orders, [good])
    chunks = list(svc.suggest(sid))
    assert not any(c.startswith(REPLACE) for c in chunks)
    assert final_text(iter(chunks)) == good
    assert svc.store.llm_calls(1)[0].grounding == "ok"

    bad = make(data, orders, ["Try our Golden Unicorn Lamp for £99.00, only today!"])
    sid2 = bad.new_session()
    answer_all(bad, sid2, ANSWERS)
    text = final_text(bad.suggest(sid2))
    assert text.startswith("Here are a few things I picked for you:")
    assert "Unicorn" not in text and items[0]["name"].title() in text or "**" in text
    assert "price '£99.00'" in bad.store.llm_calls(1)[0].grounding
    assert bad.history(sid2)[-1].content == text  # the shown text is what was saved


def test_confirmed_summary_is_followed_by_suggestions(shop):
    svc = make(*shop)
    sid = svc.new_session()
    out = answer_all(svc, sid, ANSWERS)
    assert out.turn.done
    reply = "".join(svc.respond(sid, "confirm"))
    assert "Thanks! That's everything I need." in reply
    assert "**" in reply and "£" in reply  # the cards' items, in words
    assert not svc.suggestion_due(sid) and svc.shown_recommendations(sid)


def test_profile_in_chroma_survives_a_new_process(shop):
    data, orders = shop
    svc = make(data, orders)
    sid = svc.new_session()
    answer_all(svc, sid, ANSWERS)
    assert svc.parts.profile_writer().flush()  # written in the background
    script = (
        "import json, sys\n"
        "from assistant.core.config import load_settings\n"
        "from assistant.infra.vectors import VectorStore\n"
        f"vs = VectorStore.from_settings(load_settings(data_dir={str(data)!r}))\n"
        f"got = vs.get('profiles', [{sid!r}])\n"
        "hits = vs.query('profiles', 'christmas candles for myself', k=50)\n"
        "print(json.dumps({'got': got, 'ids': [h['id'] for h in hits]}))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    record = out["got"][sid]
    assert "Candles and lights" in record["document"]
    assert record["metadata"]["budget_band"] == "under £20"
    assert sid in out["ids"]


def test_similar_customers_with_a_segment_filter(shop):
    svc = make(*shop)
    assert svc.ensure_customer_profiles() > 100
    sid = svc.new_session()
    answer_all(svc, sid, ANSWERS)
    near = svc.similar_customers(sid, k=5)
    assert len(near) == 5 and near[0]["similarity"] >= near[-1]["similarity"]
    segment = svc.store.load_profile(sid)["segment"]
    same = svc.similar_customers(sid, k=5, same_segment=True)
    seg = svc.segment_model().customers["rfm_segment"]
    assert all(seg.loc[c["customer_id"]] == segment for c in same)


def test_a_new_visitors_list_draws_on_customers_found_in_chroma(shop):
    svc = make(*shop)
    svc.ensure_customer_profiles()  # indexed once per data dir (maybe by another test)
    assert svc.parts.profile_index().customers_indexed() > 100
    sid = svc.new_session()
    answer_all(svc, sid, {**ANSWERS, "anything_else": "vintage enamel signs for the shed"})
    profile = svc.shopping.profile(svc.guided.open(sid))
    recs = svc.recommender()
    query = recs.query(profile, svc.shopping.similar_people)
    assert len(query.people) == 100  # personal.PEOPLE, real customers of the shop
    assert set(p for p, _ in query.people) <= recs.customers
    nearest = svc.similar_customers(sid, k=1)[0]
    assert query.people[0] == (nearest["customer_id"],
                               pytest.approx(nearest["similarity"], abs=1e-4))
    search = svc.shopping.search_products
    with_people = recs.recommend(profile, 10, people=svc.shopping.similar_people,
                                 search=search)
    without = recs.recommend(profile, 10, search=search)
    assert [r.item for r in with_people] != [r.item for r in without]
    # the chat's own path asks Chroma too
    assert [r.item for r in svc.shopping.rank(profile, 10)] == [r.item for r in with_people]
    # a linked customer is served from their purchases: Chroma is not asked
    known = next(iter(sorted(recs.customers)))
    asked = []
    recs.query(profile.__class__(answers=profile.answers, customer_id=known,
                                 description=profile.description),
               lambda doc, k: asked.append(doc) or [])
    assert asked == []


def test_a_chroma_failure_leaves_the_list_to_the_answers(shop, monkeypatch, caplog):
    svc = make(*shop)
    sid = svc.new_session()
    answer_all(svc, sid, ANSWERS)
    index = svc.parts.profile_index()

    def broken(*args, **kwargs):
        raise ConnectionError("chroma server went away")

    monkeypatch.setattr(index, "similar_customers", broken)
    out = svc.recommend(sid)
    assert not out.popular and len(out.items) == svc.settings.recommendations
    assert "similar people from Chroma failed" in caplog.text


def test_catalog_in_chroma_matches_a_persons_own_words(shop):
    svc = make(*shop)
    assert svc.ensure_catalog_index() > 1000 and svc.ensure_catalog_index() == 0
    hits = svc.search_products("heart shaped tea light holder", k=10)
    names = svc.recommender().catalog.set_index("item")["description"]
    assert any("T-LIGHT" in names[h] or "HEART" in names[h] for h in hits)
    sid = svc.new_session()
    answer_all(svc, sid, {**ANSWERS, "anything_else": "she loves hearts and t-lights"})
    items = svc.recommend(sid).items
    said = [i for i in items if any(r.startswith("matches what you said") for r in i["reasons"])]
    assert said and items[: len(said)] == said


def test_feedback_moves_an_items_neighbours(shop):
    """Issue 16: "less like this" pushes the item and its neighbours (co-purchase and
    description) down, "more like this" lifts its neighbours and says why, "not for me"
    blocks the item only."""
    from assistant.recommend.personal import Profile

    recs = make(*shop).recommender()
    model = recs.model
    answers = {"interests": ["candles_lights", "christmas"], "buyer_type": "for myself"}

    def ranks(feedback: dict[str, str]) -> dict[str, int]:
        out = recs.recommend(Profile(answers=answers, feedback=feedback), k=60)
        return {r.item: k for k, r in enumerate(out)}

    def neighbours_of(item: str, among: dict[str, int]) -> list[str]:
        pos = model.data_.items.get_loc(item)
        near = model.neighbours([pos])[0]
        return [i for i in among if i != item
                and near[model.data_.items.get_loc(i)] >= 0.5]

    base = ranks({})
    top = next(iter(base))
    near = neighbours_of(top, base)
    assert near, "the top item has neighbours in the list"
    less = ranks({top: "dislike"})
    assert less.get(top, 99) >= 10  # the item itself goes well down
    moved = [less.get(i, 99) - base[i] for i in near]
    assert sum(moved) > 0 and sum(m > 0 for m in moved) > len(moved) / 2, moved
    # "not for me": only the item goes; its neighbours stay about where they were
    blocked = ranks({top: "not_for_me"})
    assert top not in blocked
    # "more like this" on an item further down lifts its neighbours and says so
    mid = list(base)[20]
    near_mid = neighbours_of(mid, base)
    liked = recs.recommend(Profile(answers=answers, feedback={mid: "like"}), k=60)
    after = {r.item: k for k, r in enumerate(liked)}
    lifted = [base[i] - after.get(i, 99) for i in near_mid]
    assert lifted and sum(lifted) > 0, lifted
    assert any("you liked" in " ".join(r.reasons) for r in liked[:10])


def test_diversity_setting_varies_the_suggestions(shop):
    """TAILOR_DIVERSITY: MMR re-ranking makes the shown list less alike."""
    from assistant.recommend.personal import Profile
    from assistant.recommend.ranking import intra_list_diversity

    recs = make(*shop).recommender()
    model = recs.model
    vectors = model.components_["content"].item_vectors_
    profile = Profile(answers={"interests": ["christmas"], "buyer_type": "for myself"})

    def spread(level: float) -> float:
        items = [r.item for r in recs.recommend(profile, k=5, diversity=level)]
        pos = model.data_.items.get_indexer(items)
        return intra_list_diversity(pos[None, :], vectors)

    assert spread(0.6) > spread(0.0)
