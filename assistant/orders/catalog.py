"""The product catalog derived from orders: one row per item, with a product group taken
from its description by keyword rules in ``data/product_groups.yaml`` (ops-editable).

Rules are tried top to bottom and the first group with a matching pattern wins; patterns
are Python regular expressions searched case-insensitively. Matching runs once per distinct
description (a few thousand), never per order line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from assistant.core.config import REPO_ROOT
from assistant.core.errors import ConfigError

DEFAULT_GROUPS_PATH = REPO_ROOT / "data" / "product_groups.yaml"

#: Columns of ``build_catalog``'s frame, in order, with their dtypes.
CATALOG_COLUMNS: dict[str, str] = {
    "item": "string",
    "description": "string",
    "typical_price": "float64",
    "popularity": "int64",
    "group": "string",
}


@dataclass(frozen=True)
class GroupRule:
    name: str
    label: str
    patterns: tuple[str, ...]
    regex: re.Pattern[str]
    exclude: re.Pattern[str] | None = None

    def matches(self, description: str) -> bool:
        if self.regex.search(description) is None:
            return False
        return self.exclude is None or self.exclude.search(description) is None


@dataclass(frozen=True)
class GroupRules:
    rules: tuple[GroupRule, ...]
    fallback: str = "other"
    path: Path | None = None

    @property
    def names(self) -> list[str]:
        names = [r.name for r in self.rules]
        return names + ([self.fallback] if self.fallback not in names else [])


def load_group_rules(path: str | Path | None = None) -> GroupRules:
    """Read and compile the group rules; a clear ``ConfigError`` names any problem."""
    path = Path(path) if path is not None else DEFAULT_GROUPS_PATH
    fix = f"Fix {path} (format: see the comment at its top)."
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Product group rules not found: {path}", fix) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path.name} is not valid YAML{line}: {exc}", fix) from None
    if not isinstance(data, dict) or not isinstance(data.get("groups"), list):
        raise ConfigError(f"{path.name} needs a top-level 'groups:' list.", fix)
    fallback = str(data.get("fallback") or "other")
    rules: list[GroupRule] = []
    seen: set[str] = set()
    for i, entry in enumerate(data["groups"], start=1):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ConfigError(f"{path.name}: group #{i} has no 'name'.", fix)
        name = str(entry["name"]).strip()
        if name in seen:
            raise ConfigError(f"{path.name}: group {name!r} is defined twice.", fix)
        seen.add(name)
        patterns = entry.get("patterns") or []
        if not isinstance(patterns, list) or not patterns:
            raise ConfigError(f"{path.name}: group {name!r} has no 'patterns' list.", fix)
        exclude = entry.get("exclude") or []
        if not isinstance(exclude, list):
            raise ConfigError(f"{path.name}: group {name!r}: 'exclude' must be a list.", fix)
        rules.append(
            GroupRule(
                name=name,
                label=str(entry.get("label") or name),
                patterns=tuple(str(p) for p in patterns),
                regex=_compile(patterns, path.name, name, fix),
                exclude=_compile(exclude, path.name, name, fix) if exclude else None,
            )
        )
    return GroupRules(tuple(rules), fallback, path)


def _compile(patterns: list, filename: str, group: str, fix: str) -> re.Pattern[str]:
    for p in patterns:
        try:
            re.compile(str(p))
        except re.error as exc:
            raise ConfigError(
                f"{filename}: group {group!r}: pattern {str(p)!r} is not a valid regular "
                f"expression ({exc}).",
                fix,
            ) from None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def clean_description(s: pd.Series) -> pd.Series:
    """Stripped, runs of whitespace collapsed to one space; missing -> ''."""
    s = s.astype("string").fillna("").str.strip()
    messy = s.str.contains("  ", regex=False) | s.str.contains("\t", regex=False)
    if messy.any():
        s = s.copy()
        s[messy] = s[messy].str.replace("[ \t]+", " ", regex=True)
    return s


def assign_groups(
    descriptions: pd.Series, rules: GroupRules | None = None
) -> pd.Series:
    """Group name per description (same index, dtype string). Empty/missing -> fallback.

    Vectorized: the rules run once per distinct description, then map back by code."""
    rules = rules if rules is not None else load_group_rules()
    codes, uniques = pd.factorize(descriptions.astype("string").fillna(""), sort=False)
    cleaned = clean_description(pd.Series(uniques, dtype="string")).to_numpy(dtype=object)
    group = np.full(len(cleaned), rules.fallback, dtype=object)
    open_ = cleaned != ""
    for rule in rules.rules:
        if not open_.any():
            break
        candidates = np.flatnonzero(open_)
        hit = np.fromiter(
            (rule.matches(cleaned[i]) for i in candidates),
            dtype=bool,
            count=len(candidates),
        )
        group[candidates[hit]] = rule.name
        open_[candidates[hit]] = False
    out = group[codes] if len(codes) else np.array([], dtype=object)
    return pd.Series(out, index=descriptions.index, dtype="string", name="group")


def build_catalog(orders: pd.DataFrame, rules: GroupRules | None = None) -> pd.DataFrame:
    """One row per item: item, description (its most common cleaned description),
    typical_price (median unit price over purchases; over all its rows when it was never
    purchased), popularity (distinct purchasing customers) and group. Sorted by popularity,
    then item."""
    cols = list(CATALOG_COLUMNS)
    if orders.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CATALOG_COLUMNS.items()})[cols]
    df = pd.DataFrame(
        {
            "item": orders["item"].astype("string"),
            "description": clean_description(orders["description"]),
            "unit_price": orders["unit_price"].astype("float64"),
            "customer": orders["customer"].astype("string"),
            "is_return": orders["is_return"].astype(bool),
        }
    )
    purchases = df[~df["is_return"]]

    counts = (
        df[df["description"] != ""]
        .groupby(["item", "description"], observed=True)
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["item", "n", "description"], ascending=[True, False, True])
        .drop_duplicates("item")
        .set_index("item")["description"]
    )
    items = pd.Index(df["item"].unique(), name="item")
    price_all = df.groupby("item")["unit_price"].median()
    price = purchases.groupby("item")["unit_price"].median().reindex(items)
    price = price.fillna(price_all.reindex(items))
    popularity = purchases.groupby("item")["customer"].nunique().reindex(items).fillna(0)

    cat = pd.DataFrame(
        {
            "item": items,
            "description": counts.reindex(items).fillna("").to_numpy(),
            "typical_price": price.to_numpy(),
            "popularity": popularity.to_numpy(),
        }
    )
    cat["group"] = assign_groups(cat["description"], rules).to_numpy()
    cat = cat.astype(CATALOG_COLUMNS)[cols]
    return cat.sort_values(["popularity", "item"], ascending=[False, True]).reset_index(
        drop=True
    )


def spend_by_group(orders: pd.DataFrame, rules: GroupRules | None = None) -> pd.DataFrame:
    """Purchase spend per group (amount, share), largest first: a check for the rules."""
    purchases = orders[~orders["is_return"]]
    groups = assign_groups(purchases["description"], rules)
    spend = purchases["amount"].groupby(groups.to_numpy()).sum()
    # largest first; equal spend by group name (stable sort on the name-sorted index)
    spend = spend.sort_index().sort_values(ascending=False, kind="stable")
    out = pd.DataFrame({"amount": spend, "share": spend / spend.sum()})
    out.index.name = "group"
    return out
