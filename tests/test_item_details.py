"""A card's "Show me" (``Shopping.item_details``) on a copy of the staff shop (60,000 rows of
Online Retail): the details are the catalog's, the items "often bought with it" were really
bought by the same customers, the click goes to the event log and the funnel counts the card
as engaged; bad input gets a message and logs nothing; the chat's callback and API draw it."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from assistant.core.errors import InputError
from assistant.insights.funnel import funnel
from assistant.service.assistant import AssistantService
from assistant.service.shopping import BOUGHT_WITH
from assistant.ui import app
from assistant.ui.chat import item_markdown, shown_name
from tests.conftest import shop_service, staff_copy


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> AssistantService:
    """One service for the module: the recommender is fitted once."""
    return shop_service(staff_copy(staff_shop, tmp_path_factory.mktemp("details") / "shop"))


@pytest.fixture(scope="module")
def shown(svc: AssistantService) -> tuple[str, list[dict]]:
    """A session that was shown cards: (session id, its cards)."""
    sid = svc.new_session()
    return sid, svc.recommend(sid).items


def _clicks(svc: AssistantService, sid: str) -> list[dict]:
    return [e for e in svc.store.events(kinds=("click",)) if e["session_id"] == sid]


def test_details_of_a_shown_card_are_the_catalogs(svc, shown) -> None:
    sid, cards = shown
    card = cards[0]
    details = svc.item_details(sid, card["id"])
    row = svc.recommender().catalog.set_index("item").loc[card["id"]]
    assert details["item"] == card["id"]
    assert details["name"] == row["description"] == card["name"]
    assert details["price"] == pytest.approx(row["typical_price"]) == card["price"]
    assert details["group"] == row["group"] == card["group"]
    orders = svc.orders()
    buyers = orders.loc[~orders["is_return"] & (orders["item"] == card["id"]), "customer"]
    assert details["customers"] == buyers.nunique() > 0


def test_often_bought_with_is_real_co_purchase(svc, shown) -> None:
    sid, cards = shown
    details = svc.item_details(sid, cards[0]["id"])
    also = details["bought_with"]
    assert 1 <= len(also) <= BOUGHT_WITH  # a popular item: its neighbours exist
    orders = svc.orders()
    buys = orders[~orders["is_return"]]
    mine = set(buys.loc[buys["item"] == details["item"], "customer"])
    catalog = svc.recommender().catalog.set_index("item")
    for other in also:
        assert other["item"] != details["item"]
        assert other["name"] == catalog.loc[other["item"], "description"]
        assert mine & set(buys.loc[buys["item"] == other["item"], "customer"])
    # no item-kNN component (another recommender): no neighbours, no error
    bare = copy.copy(svc.recommender())
    bare.model = copy.copy(bare.model)
    bare.model.components_ = {}
    assert bare.details(details["item"])["bought_with"] == []
    assert svc.recommender().details(details["item"])["bought_with"] == also


def test_a_click_is_logged_and_the_funnel_counts_the_card_engaged(svc) -> None:
    sid = svc.new_session()
    cards = svc.recommend(sid).items
    mine = svc.parts.events.frame().query("session_id == @sid")
    assert funnel(mine)["engaged"].tolist() == [0]
    item = cards[1]["id"]
    svc.item_details(sid, item)
    clicks = _clicks(svc, sid)
    assert [(e["kind"], e["item"]) for e in clicks] == [("click", item)]
    assert clicks[0]["customer_id"] is None  # an anonymous visitor
    mine = svc.parts.events.frame().query("session_id == @sid")
    row = funnel(mine).iloc[0]
    assert (row["shown"], row["engaged"]) == (len(cards), 1)
    assert row["ctr"]["count"] == 1 and row["ctr"]["n"] == len(cards)


def test_unknown_item_or_session_is_refused_and_logs_nothing(svc, shown) -> None:
    sid, cards = shown
    before = len(svc.store.events(kinds=("click",)))
    with pytest.raises(InputError, match="There is no item 'NOPE'") as err:
        svc.item_details(sid, "NOPE")
    assert err.value.hint == "Use an id from /recommend."
    with pytest.raises(InputError, match="Unknown session"):
        svc.item_details("no-such-session", cards[0]["id"])
    assert len(svc.store.events(kinds=("click",))) == before


def test_the_chat_callback_and_the_api_draw_the_details(svc, shown) -> None:
    sid, cards = shown
    text = app.show_item(svc, sid, cards[0]["id"])
    details = svc.item_details(sid, cards[0]["id"])
    assert text == item_markdown(details)
    assert text.startswith(f"### {shown_name(details)}")
    assert f"£{details['price']:.2f}" in text and "Often bought with it" in text
    assert all(shown_name(o) in text for o in details["bought_with"])
    with pytest.warns(UserWarning, match="There is no item 'NOPE'"):
        skipped = app.show_item(svc, sid, "NOPE")
    assert skipped == app.gr.skip()
    out, same = app.api(app.item_details)(svc, f" {cards[0]['id']} ", sid)
    assert same == sid and out == details


def test_item_markdown_without_price_or_neighbours() -> None:
    text = item_markdown({"item": "X1", "name": "RED MUG", "price": None,
                          "group": "kitchen_dining", "customers": 1200, "bought_with": []})
    assert text == "### Red Mug\n\nin kitchen dining · bought by 1,200 customers"
