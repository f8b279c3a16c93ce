"""Product groups from descriptions and the per-item catalog."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from assistant.core.config import REPO_ROOT
from assistant.core.errors import ConfigError
from assistant.orders.catalog import (
    CATALOG_COLUMNS,
    DEFAULT_GROUPS_PATH,
    assign_groups,
    build_catalog,
    load_group_rules,
    spend_by_group,
)
from assistant.orders.ingest import ORDER_COLUMNS, load_orders

REAL_FILE = REPO_ROOT / "data" / "online_retail.csv.gz"


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "groups.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_rules_load() -> None:
    rules = load_group_rules()
    assert rules.path == DEFAULT_GROUPS_PATH
    assert 10 <= len(rules.rules) <= 14
    assert rules.rules[0].name == "fees"
    assert rules.names[-1] == "other"
    for name in ("christmas", "candles_lights", "bags", "kitchen_baking", "home_decor"):
        assert name in rules.names


@pytest.mark.parametrize(
    ("description", "group"),
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", "candles_lights"),
        ("REGENCY CAKESTAND 3 TIER", "kitchen_baking"),
        ("JUMBO BAG RED RETROSPOT", "bags"),
        ("LUNCH BAG SPACEBOY DESIGN", "bags"),
        ("PAPER CHAIN KIT 50'S CHRISTMAS", "christmas"),
        ("PARTY BUNTING", "party"),
        ("POSTAGE", "fees"),
        ("DOTCOM POSTAGE", "fees"),
        ("Manual", "fees"),
        ("Bank Charges", "fees"),
        ("AMAZON FEE", "fees"),
        ("RED RETROSPOT WRAP", "cards_wrap"),
        ("SPACEBOY BIRTHDAY CARD", "cards_wrap"),
        ("CREAM HEART CARD HOLDER", "home_decor"),
        ("VINTAGE SNAP CARDS", "kids_toys"),
        ("HOT WATER BOTTLE TEA AND SYMPATHY", "home_decor"),  # 'exclude' keeps it out of kitchen
        ("GARDENERS KNEELING PAD CUP OF TEA", "garden"),
        ("DIAMANTE HAIR GRIP PACK/2 CRYSTAL", "jewellery_accessories"),
        ("SET OF 3 NOTEBOOKS IN PARCEL", "stationery"),
        ("DOORMAT KEEP CALM AND COME IN", "home_decor"),
        ("CREAM CUPID HEARTS COAT HANGER", "home_decor"),  # 'cup' is a whole word only
        ("SOMETHING NOBODY SELLS", "other"),
    ],
)
def test_assign_groups_known_answers(description: str, group: str) -> None:
    assert assign_groups(pd.Series([description])).item() == group


def test_assign_groups_cleans_keeps_index_and_handles_missing() -> None:
    s = pd.Series(["  jumbo   bag red ", None, "", "POSTAGE", "  jumbo   bag red "],
                  index=[10, 11, 12, 13, 14])
    out = assign_groups(s)
    assert out.index.tolist() == [10, 11, 12, 13, 14]
    assert str(out.dtype) == "string"
    assert out.tolist() == ["bags", "other", "other", "fees", "bags"]
    assert assign_groups(pd.Series([], dtype="string")).empty


def test_first_matching_rule_wins_and_exclude(tmp_path: Path) -> None:
    path = rules_file(
        tmp_path,
        """
fallback: misc
groups:
  - name: first
    patterns: ['\\bred\\b']
    exclude: ['red wine']
  - name: second
    patterns: ['bag', 'red']
""",
    )
    rules = load_group_rules(path)
    out = assign_groups(pd.Series(["RED BAG", "BAG", "RED WINE BAG", "CUP"]), rules)
    assert out.tolist() == ["first", "second", "second", "misc"]
    assert rules.names == ["first", "second", "misc"]


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("groups: [\n", "not valid YAML"),
        ("fallback: other\n", "'groups:'"),
        ("groups:\n  - patterns: ['x']\n", "no 'name'"),
        ("groups:\n  - name: a\n", "no 'patterns'"),
        ("groups:\n  - name: a\n    patterns: ['(unclosed']\n", "not a valid regular"),
        ("groups:\n  - name: a\n    patterns: ['x']\n  - name: a\n    patterns: ['y']\n",
         "defined twice"),
    ],
)
def test_bad_rules_file(tmp_path: Path, text: str, expect: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_group_rules(rules_file(tmp_path, text))
    assert expect in info.value.message
    assert "groups.yaml" in info.value.message or "groups.yaml" in info.value.hint
    assert info.value.hint


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_group_rules(tmp_path / "nope.yaml")


def orders_frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["customer", "order_id", "item", "description", "quantity", "unit_price"]
    df = pd.DataFrame(rows, columns=cols)
    df["timestamp"] = pd.Timestamp("2021-01-01")
    df["amount"] = df["quantity"] * df["unit_price"]
    df["country"] = "UK"
    df["is_return"] = df["quantity"] < 0
    return df[list(ORDER_COLUMNS)].astype(ORDER_COLUMNS)


def test_build_catalog_known_answers() -> None:
    orders = orders_frame(
        [
            ("a", "1", "X1", "JUMBO BAG RED ", 1, 2.0),
            ("a", "2", "X1", "JUMBO  BAG RED", 1, 3.0),
            ("b", "3", "X1", "JUMBO BAG RED", 5, 10.0),
            ("c", "4", "X1", "jumbo bag (old name)", 1, 2.5),
            ("c", "C5", "X1", "JUMBO BAG RED", -1, 99.0),  # a return: no price, no popularity
            ("b", "6", "P", "POSTAGE", 1, 18.0),
            ("d", "C7", "R", "WHITE METAL LANTERN", -2, 3.0),  # only ever returned
        ]
    )
    cat = build_catalog(orders)
    assert list(cat.columns) == list(CATALOG_COLUMNS)
    assert {c: str(t) for c, t in cat.dtypes.items()} == CATALOG_COLUMNS
    assert cat["item"].tolist() == ["X1", "P", "R"]  # by popularity, then item
    x1 = cat.set_index("item").loc["X1"]
    assert x1["description"] == "JUMBO BAG RED"
    assert x1["typical_price"] == pytest.approx(2.75)  # median of 2, 3, 10, 2.5
    assert x1["popularity"] == 3
    assert x1["group"] == "bags"
    r = cat.set_index("item").loc["R"]
    assert (r["popularity"], r["typical_price"], r["group"]) == (0, 3.0, "candles_lights")
    assert cat.set_index("item").loc["P", "group"] == "fees"


def test_spend_by_group_ties_in_group_name_order() -> None:
    orders = orders_frame(
        [
            ("a", "1", "G1", "GARDEN SPADE", 1, 5.0),
            ("a", "1", "B1", "JUMBO BAG RED", 1, 5.0),
            ("a", "1", "C1", "WHITE CANDLE", 1, 5.0),
            ("a", "1", "K1", "TEA CUP", 2, 5.0),
        ]
    )
    spend = spend_by_group(orders)
    assert spend.index.tolist() == ["kitchen_baking", "bags", "candles_lights", "garden"]


def test_build_catalog_empty() -> None:
    cat = build_catalog(orders_frame([]))
    assert cat.empty and list(cat.columns) == list(CATALOG_COLUMNS)


@pytest.fixture(scope="module")
def real_orders() -> pd.DataFrame:
    return load_orders(REAL_FILE).orders


def test_real_spend_in_other_is_small(real_orders: pd.DataFrame) -> None:
    spend = spend_by_group(real_orders)
    assert spend["share"].sum() == pytest.approx(1.0)
    assert spend.loc["other", "share"] < 0.05  # measured 2.5% (1.9% is one 80,995-unit line)
    assert set(spend.index) == set(load_group_rules().names)


def test_real_catalog(real_orders: pd.DataFrame) -> None:
    cat = build_catalog(real_orders)
    assert cat["item"].is_unique
    assert len(cat) == real_orders["item"].nunique()
    top = cat.iloc[0]
    assert (top["item"], top["description"], top["group"]) == (
        "22423", "REGENCY CAKESTAND 3 TIER", "kitchen_baking",
    )
    assert top["typical_price"] == pytest.approx(12.75)
    assert cat.set_index("item").loc["POST", "group"] == "fees"
    assert (cat["description"] == cat["description"].str.strip()).all()
