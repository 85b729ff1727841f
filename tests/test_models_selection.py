"""Product selection scoring on hand-made frames: components, contributions, decisions and reasons."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from models.selection import DEFAULT_CONFIG, review_themes, select_products

AS_OF = dt.date(2024, 6, 30)


def _demand(per_sku: dict[str, tuple[float, float]], category: dict[str, str] | None = None) -> pl.DataFrame:
    """180 days per SKU: `prev` units a day for the first 90 days, `last` a day for the last 90, price 10."""
    rows = []
    for sku, (prev, last) in per_sku.items():
        for k in range(180):
            day = AS_OF - dt.timedelta(days=179 - k)
            rows.append(
                {
                    "sku": sku,
                    "category": (category or {}).get(sku, "toys"),
                    "date": day,
                    "units": float(prev if k < 90 else last),
                    "avg_unit_price": 10.0,
                }
            )
    return pl.DataFrame(rows)


PRODUCTS = pl.DataFrame(
    {
        "sku": ["GROW", "FLAT", "FALL"],
        "category": ["toys", "toys", "toys"],
        "unit_cost": [4.0, 6.0, 9.0],
        "list_price": [10.0, 10.0, 10.0],
    }
)
DEMAND = _demand({"GROW": (1, 3), "FLAT": (2, 2), "FALL": (4, 1)})
ORDER_LINES = pl.DataFrame(
    {
        "sku": ["GROW", "GROW", "FLAT", "FLAT", "FALL", "FALL"],
        "quantity": [99, 1, 95, 5, 70, 30],
        "status": ["completed", "returned", "completed", "returned", "completed", "returned"],
    }
)
REVIEWS = pl.DataFrame(
    {
        "sku": ["GROW"] * 3 + ["FLAT"] * 3 + ["FALL"] * 4,
        "score": [5, 5, 4, 4, 3, 4, 1, 2, 1, 5],
        "scale": ["stars_1_5"] * 10,
        "text": [
            "love it",
            None,
            "good",
            "ok",
            "fine",
            "nice",
            "arrived broken and late",
            "produto com defeito, qualidade ruim",
            "Chegou atrasado",
            "great",
        ],
    }
)
COMPETITORS = pl.DataFrame(
    {
        "date": [AS_OF] * 6,
        "sku": ["GROW", "GROW", "FLAT", "FLAT", "FALL", "FALL"],
        "competitor": ["x", "y"] * 3,
        "price": [11.0, 13.0, 10.0, 10.0, 8.0, 8.0],
    }
)


def test_components_by_hand_and_ranking() -> None:
    res = select_products(DEMAND, PRODUCTS, ORDER_LINES, REVIEWS, COMPETITORS, as_of=AS_OF)
    skus = {r["sku"]: r for r in res.skus.iter_rows(named=True)}
    assert skus["GROW"]["trend"] == pytest.approx((270 - 90) / 90)  # 3/day vs 1/day over 90 days
    assert skus["FALL"]["trend"] == pytest.approx((90 - 360) / 360)
    assert skus["FLAT"]["margin"] == pytest.approx(0.4)
    assert skus["FALL"]["return_rate"] == pytest.approx(0.3)
    assert skus["GROW"]["review_score"] == pytest.approx(((5 - 1) / 4 * 2 + 3 / 4) / 3)
    assert skus["FALL"]["complaints"] == pytest.approx(3 / 4)
    assert skus["GROW"]["price_gap"] == pytest.approx(10 / 12 - 1)
    assert skus["FALL"]["price_gap"] == pytest.approx(10 / 8 - 1)
    assert res.skus["sku"].to_list() == [
        "GROW",
        "FLAT",
        "FALL",
    ]  # best on every component, then middle, then worst
    assert res.skus["rank"].to_list() == [1, 2, 3]
    assert skus["GROW"]["decision"] == "expand" and skus["FALL"]["decision"] == "delist"
    assert skus["FLAT"]["decision"] == "keep"


def test_contributions_add_up_to_the_score() -> None:
    res = select_products(DEMAND, PRODUCTS, ORDER_LINES, REVIEWS, COMPETITORS, as_of=AS_OF)
    weights = DEFAULT_CONFIG["weights"]
    contrib = res.skus.select(pl.sum_horizontal([f"contrib_{c}" for c in weights]).alias("s"))["s"]
    assert contrib.to_list() == pytest.approx(res.skus["score"].to_list())
    # each contribution is weight * normalised value / total weight
    row = res.skus.row(0, named=True)
    total = sum(weights.values())
    assert row["contrib_margin"] == pytest.approx(weights["margin"] * row["norm_margin"] / total)
    assert res.skus["score"].is_between(0, 1).all()


def test_reasons_and_themes_explain_the_call() -> None:
    res = select_products(DEMAND, PRODUCTS, ORDER_LINES, REVIEWS, COMPETITORS, as_of=AS_OF)
    fall = res.skus.filter(pl.col("sku") == "FALL").row(0, named=True)
    assert fall["reasons"].startswith("- ")
    assert "demand -75% vs previous 90 days" in fall["reasons"]
    assert fall["theme_late"] == 2  # "late" in English, "atrasado" in Portuguese
    assert fall["theme_damaged"] == 1 and fall["theme_quality"] == 1
    grow = res.skus.filter(pl.col("sku") == "GROW").row(0, named=True)
    assert "demand +200% vs previous 90 days" in grow["reasons"]
    themes = review_themes(REVIEWS, DEFAULT_CONFIG["themes"]).filter(pl.col("sku") == "GROW")
    assert themes["n_low_reviews"][0] == 0


def test_missing_data_is_neutral_and_named() -> None:
    res = select_products(DEMAND, PRODUCTS, as_of=AS_OF)
    row = res.skus.filter(pl.col("sku") == "FLAT").row(0, named=True)
    assert row["norm_review_score"] == 0.5 and row["norm_return_rate"] == 0.5
    assert "review_score" in row["missing"] and "price_gap" in row["missing"]
    assert "trend" not in row["missing"]


def test_config_weights_and_thresholds_change_the_outcome() -> None:
    # only the competitor gap counts: FALL is the dearest, GROW the cheapest
    only_price = {"weights": {k: 0.0 for k in DEFAULT_CONFIG["weights"]} | {"price_gap": 1.0}}
    res = select_products(DEMAND, PRODUCTS, ORDER_LINES, REVIEWS, COMPETITORS, only_price, as_of=AS_OF)
    assert res.skus["sku"].to_list() == ["GROW", "FLAT", "FALL"]
    assert res.skus["score"].to_list() == pytest.approx([1.0, 0.5, 0.0])
    lenient = select_products(
        DEMAND,
        PRODUCTS,
        ORDER_LINES,
        REVIEWS,
        COMPETITORS,
        {"expand_threshold": 1.01, "delist_threshold": -0.01},
        as_of=AS_OF,
    )
    assert set(lenient.skus["decision"]) == {"keep"}
    with pytest.raises(ValueError, match="unknown weight"):
        select_products(DEMAND, PRODUCTS, config={"weights": {"colour": 1.0}})
    with pytest.raises(ValueError, match="delist_threshold"):
        select_products(DEMAND, PRODUCTS, config={"expand_threshold": 0.2, "delist_threshold": 0.5})


def test_category_rollup_and_long_tail() -> None:
    cats = {"GROW": "toys", "FLAT": "toys", "FALL": "books", "TINY": "toys"}
    demand = _demand({"GROW": (1, 3), "FLAT": (2, 2), "FALL": (4, 1), "TINY": (0, 0.1)}, cats)
    products = pl.concat(
        [
            PRODUCTS.with_columns(pl.col("sku").replace_strict(cats).alias("category")),
            pl.DataFrame({"sku": ["TINY"], "category": ["toys"], "unit_cost": [5.0], "list_price": [10.0]}),
        ]
    )
    res = select_products(demand, products, ORDER_LINES, REVIEWS, COMPETITORS, as_of=AS_OF)
    toys = res.categories.filter(pl.col("category") == "toys").row(0, named=True)
    assert toys["n_skus"] == 3
    assert toys["n_expand"] + toys["n_keep"] + toys["n_delist"] == 3
    # GROW (270 units) alone is 270/459 < 80% of toy revenue, GROW+FLAT reach it: TINY is the long tail
    tiny = res.skus.filter(pl.col("sku") == "TINY").row(0, named=True)
    assert tiny["long_tail"] is True
    assert toys["long_tail_share"] == pytest.approx(9 / (270 + 180 + 9))
    books = res.categories.filter(pl.col("category") == "books").row(0, named=True)
    assert books["top_theme"] == "late"
    assert res.categories["rank"].to_list() == [1, 2]
