"""Help base: placeholders filled from data/shop.yaml (strictly), representative passages,
a real embedded Chroma store on disk, search by meaning with an intent filter."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from assistant.core.config import load_settings
from assistant.core.errors import AssistantError, ConfigError, InputError
from assistant.support.helpbase import (
    DEFAULT_CSV,
    DEFAULT_SHOP,
    HelpBase,
    build_helpbase,
    fill_slots,
    lead,
    load_bitext,
    load_shop,
    prepare,
    select_representative,
)

SAMPLE_INTENTS = ["track_order", "delivery_period", "place_order", "get_refund",
                  "contact_customer_service", "recover_password", "check_payment_methods"]
PER_INTENT = 20


@pytest.fixture(scope="module")
def bitext() -> pd.DataFrame:
    return load_bitext(DEFAULT_CSV)


@pytest.fixture(scope="module")
def shop():
    return load_shop(DEFAULT_SHOP)


def _write_sample(df: pd.DataFrame, path: Path) -> Path:
    """Every row of a few intents: the selection then picks what the full build picks."""
    df[df["intent"].isin(SAMPLE_INTENTS)].to_csv(path, index=False)
    return path


def _shop_copy(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(DEFAULT_SHOP.read_text())
    edit(data)
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------- placeholders
def test_shipped_shop_file_fills_every_response(bitext: pd.DataFrame, shop) -> None:
    prepared = prepare(bitext, shop)
    assert prepared.rows == len(bitext) == 4514
    assert len(prepared.candidates) > 0.8 * len(bitext)
    for cand in prepared.candidates:
        assert "{{" not in cand.text and "}}" not in cand.text, cand.id
        assert not re.search(r"\d{5,}", cand.text), cand.id  # no customer's order id left
        assert "24/7" not in cand.text, cand.id  # a claim the shop does not make
        assert set(re.findall(r"\[([^\]]*)\]", cand.text)) <= set(cand.slots), cand.id
        assert "\x00" not in cand.text
    assert set(prepared.left_out) == {"omitted_placeholder", "customer_specific",
                                      "excluded_phrase"}
    slots = {s for c in prepared.candidates for s in c.slots}
    assert slots == {"order number", "invoice number", "name", "amount", "tracking number",
                     "purchase date", "payment method", "customer name"}
    assert {c.intent for c in prepared.candidates} == set(bitext["intent"])


def test_facts_come_from_the_shop_file(shop) -> None:
    filled = shop.fill("Call {{Customer Support Phone Number}} ({{Customer Support Hours}}) "
                       "or use {{live chat}} on {{Website Name}}.")
    phone, hours = shop.shop["phone"], shop.shop["support_hours"]
    assert filled.text == (f"Call {phone} ({hours}) or use {shop.shop['live_chat']} on "
                           f"{shop.shop['website_name']}.")
    assert filled.slots == () and filled.omitted_by == ()


def test_customer_data_becomes_slots(shop) -> None:
    filled = shop.fill("Cancel order {{Order Number Anonymized}} (invoice "
                       "{{Invoice Number Anonymized}}), order {{Purchase ID Anonymized}}.")
    assert filled.text == ("Cancel order [order number] (invoice [invoice number]), "
                           "order [order number].")
    assert filled.slots == ("order number", "invoice number")
    assert fill_slots(filled.text, {"order number": "536365"}) == (
        "Cancel order 536365 (invoice your invoice number), order 536365.")
    assert fill_slots(filled.text, {}, default=None) == filled.text


def test_excluded_phrases_leave_a_response_out(shop) -> None:
    df = pd.DataFrame({"instruction": ["a", "b", "c"],
                       "intent": ["contact_customer_service"] * 3, "category": ["CONTACT"] * 3,
                       "response": ["We are here 24/7 at {{Customer Support Phone Number}}.",
                                    "We are here {{Customer Support Hours}}.",
                                    "Press [the big red button]."]})
    prepared = prepare(df, shop)
    assert prepared.left_out == {"excluded_phrase": 1, "unresolved_brackets": 1}
    assert [c.text for c in prepared.candidates] == [
        f"We are here {shop.shop['support_hours']}."]


def test_bracketed_placeholders(shop) -> None:
    filled = shop.fill("Call [Customer Support Phone Number] ([Business Hours]) or visit "
                       "[{{Website Name}}].")
    s = shop.shop
    assert filled.text == (f"Call {s['phone']} ({s['opens']} to {s['closes']}) or visit "
                           f"{s['website_name']}.")
    assert shop.fill("Thanks! [Continue answering with the rest of the INSTRUCTIONS]") \
        .omitted_by == ("Continue answering with the rest of the INSTRUCTIONS",)
    odd = shop.fill("Press [the big red button] now.")
    assert odd.unresolved == ("the big red button",) and odd.text.endswith("button] now.")


def test_labels_and_omitted_placeholders(shop) -> None:
    assert shop.fill("Go to {{Order History}}.").text == "Go to Order History."
    assert shop.fill("Refunds in: {{Case 1}}").omitted_by == ("Case 1",)


def test_unknown_placeholder_is_named(shop) -> None:
    with pytest.raises(ConfigError, match=r"\{\{Pager Number\}\}") as info:
        shop.fill("Page us at {{Pager Number}} or {{Website Name}}.")
    assert "Website Name" not in info.value.message
    assert "labels:" in info.value.hint


def test_missing_shop_field_names_the_placeholders(tmp_path: Path) -> None:
    path = _shop_copy(tmp_path, lambda d: d["shop"].update(phone=""))
    with pytest.raises(ConfigError, match="Customer Support Phone Number") as info:
        load_shop(path)
    assert "phone" in info.value.message and "phone" in info.value.hint


def test_shop_file_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text("shop:\n  name: Tailor Gifts\n  opens: 9:00\n")
    with pytest.raises(ConfigError, match=r"shop.yaml:3: shop.opens.*quote it"):
        load_shop(path)
    path.write_text("shop:\n  name: x\nlabels:\n  Order History: A\nomit:\n  - order history\n")
    with pytest.raises(ConfigError, match="listed twice"):
        load_shop(path)
    path.write_text("shop: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_shop(path)
    with pytest.raises(ConfigError, match="Cannot read"):
        load_shop(tmp_path / "missing.yaml")


def test_customer_values_written_as_text_become_slots(shop) -> None:
    df = pd.DataFrame([{
        "instruction": "cancel order 00123842", "intent": "cancel_order", "category": "ORDER",
        "entity_type": "order_id", "entity_value": "123842",
        "response": "To cancel order 00123842 worth $1,200.50, visit {{Website Name}}.",
    }, {
        "instruction": "x", "intent": "cancel_order", "category": "ORDER", "entity_type": "",
        "entity_value": "", "response": "Your order 113542617735902 is being cancelled.",
    }])
    prepared = prepare(df, shop)
    [cand] = prepared.candidates
    assert cand.text == (f"To cancel order [order number] worth [amount], visit "
                         f"{shop.shop['website_name']}.")
    assert cand.slots == ("order number", "amount")
    assert prepared.left_out == {"customer_specific": 1}


def test_select_representative_skips_near_duplicates() -> None:
    texts = ["track your order in the order history section",
             "track your order in the order history section!",
             "you can track the order from the order history page",
             "our phone number is on the contact page"]
    picked = select_representative(texts, 3)
    assert picked == select_representative(texts, 3)  # deterministic
    assert len(picked) == 3 and not {0, 1} <= set(picked)
    assert select_representative(texts[:1], 5) == [0]


def test_lead_is_the_opening() -> None:
    text = "I understand you want to track your order. Here is how.\n\n1. Log in.\n2. Look."
    assert lead(text) == "I understand you want to track your order. Here is how."
    assert len(lead("word " * 200)) <= 300


def test_bad_data_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nhi,hello\n")
    with pytest.raises(InputError, match="no column"):
        load_bitext(bad)
    with pytest.raises(InputError, match="not found"):
        load_bitext(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- Chroma
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, bitext: pd.DataFrame):
    root = tmp_path_factory.mktemp("helpbase")
    csv = _write_sample(bitext, root / "sample.csv")
    base = HelpBase.from_settings(load_settings(data_dir=root / "data"))
    stages: list[tuple[str, float]] = []
    summary = build_helpbase(base, csv_path=csv, per_intent=PER_INTENT,
                             progress=lambda s, f: stages.append((s, f)))
    return base, csv, summary, stages


def test_build_indexes_passages_with_metadata(built) -> None:
    base, _, summary, stages = built
    assert summary["skipped"] is False
    assert summary["passages"] == base.count() == PER_INTENT * len(SAMPLE_INTENTS)
    assert summary["per_intent"] == {i: PER_INTENT for i in sorted(SAMPLE_INTENTS)}
    assert base.intents() == frozenset(SAMPLE_INTENTS)
    assert stages and stages[-1] == ("indexing help passages", 1.0)


def test_search_finds_the_right_intent(built) -> None:
    base, *_ = built
    hits = base.search("where is my order", k=3)
    assert len(hits) == 3
    assert hits[0].intent in {"track_order", "delivery_period"}
    assert hits[0].score >= hits[1].score >= hits[2].score
    hit = hits[0]
    assert hit.title == hit.intent.replace("_", " ").capitalize()
    assert hit.category and hit.id.startswith(hit.intent)
    assert len(hit.text) > len(lead(hit.text))  # the whole passage, not the embedded opening
    assert "{{" not in hit.text
    clear = {"I forgot my password and cannot log in": "recover_password",
             "I want my money back": "get_refund",
             "how long will delivery take": "delivery_period",
             "which payment methods do you accept": "check_payment_methods",
             "what is your customer service phone number": "contact_customer_service",
             "I would like to buy some candles": "place_order"}
    got = {text: base.search(text, k=1)[0].intent for text in clear}
    assert got == clear
    only = base.search("where is my order", k=4, intent="get_refund")
    assert {p.intent for p in only} == {"get_refund"}


def test_search_bad_input(built) -> None:
    base, *_ = built
    with pytest.raises(InputError, match="empty"):
        base.search("   ")
    with pytest.raises(InputError, match="Unknown intent"):
        base.search("refund", intent="sell_kidney")
    with pytest.raises(InputError, match="out of range"):
        base.search("refund", k=0)
    assert base.search("x" * 30_000, k=1)  # a huge ticket is cut, not refused


def test_rebuild_is_skipped_then_redone_when_the_shop_changes(built, tmp_path: Path) -> None:
    base, csv, first, _ = built
    again = build_helpbase(base, csv_path=csv, per_intent=PER_INTENT)
    assert again == {"skipped": True, "build": first["build"], "passages": first["passages"]}
    shop = _shop_copy(tmp_path, lambda d: d["shop"].update(phone="+44 1632 960000"))
    redone = build_helpbase(base, csv_path=csv, shop_path=shop, per_intent=3)
    assert redone["skipped"] is False and redone["build"] != first["build"]
    assert base.count() == 3 * len(SAMPLE_INTENTS)  # older passages removed
    assert base.current_build() == redone["build"]
    texts = " ".join(p.text for p in base.search("call customer service phone", k=10))
    assert "+44 1632 960000" in texts
    assert shop_phone_absent(texts)


def shop_phone_absent(texts: str) -> bool:
    return load_shop(DEFAULT_SHOP).shop["phone"] not in texts


def test_empty_help_base_says_how_to_build(settings) -> None:
    base = HelpBase.from_settings(settings)
    with pytest.raises(AssistantError, match="empty") as info:
        base.search("where is my order")
    assert "assistant help build" in info.value.hint


def test_cli_build_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          bitext: pd.DataFrame) -> None:
    import json

    from typer.testing import CliRunner

    from assistant.cli import app

    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "state"))
    runner = CliRunner()
    empty = runner.invoke(app, ["help", "search", "where is my order"])
    assert empty.exit_code == 2 and "assistant help build" in empty.output
    csv = tmp_path / "two.csv"
    bitext[bitext["intent"].isin(["track_order", "review"])].to_csv(csv, index=False)
    args = ["help", "build", "--data", str(csv), "--per-intent", "2"]
    built = runner.invoke(app, [*args, "--json"])
    assert built.exit_code == 0, built.output
    assert json.loads(built.output)["passages"] == 4
    assert "up to date" in runner.invoke(app, args).output
    found = runner.invoke(app, ["help", "search", "where is my order", "-k", "1", "--json"])
    assert json.loads(found.output)[0]["intent"] == "track_order"
    bad = runner.invoke(app, ["help", "build", "--shop", str(tmp_path / "none.yaml")])
    assert bad.exit_code == 2 and "Cannot read the shop settings" in bad.output
