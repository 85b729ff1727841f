"""Product selection: an explainable score per SKU and category, and an expand / keep / delist call.

Inputs (Polars frames; all but `demand` and `products` optional):
- demand: sku, category, date, units, avg_unit_price (the mart `fct_sku_daily_demand`).
- products: sku, category, unit_cost, list_price.
- order_lines: sku, quantity, status (completed / cancelled / returned), the canonical orders lines.
- reviews: sku, score, scale (stars_1_5 or nps_0_10), text.
- competitor_prices: date, sku, competitor, price.

Components (raw value -> normalised 0..1 where 1 is good; a SKU without the data gets 0.5, neutral, and
the component is named in `missing`):
- trend: units in the last `window_days` vs the `window_days` before: (last - prev) / max(prev, 1),
  clipped to [-1, 3]; SKUs younger than two windows have no trend.
- margin: (price - unit_cost) / price, price = revenue / units over the window (list_price if unsold).
- return_rate (lower is better): returned units / (completed + returned units).
- review_score: mean score rescaled to 0..1 (stars (s-1)/4, NPS s/10), needs `min_reviews` reviews
  (reasons show it back on a 1-5 scale).
- complaints (lower is better): share of reviews that are low-score (stars <= 2, NPS <= 6). The themes
  of low-score texts are counted per SKU (`theme_<name>` columns) from keyword lists, English and
  Portuguese (the Olist reviews are Portuguese); they explain the complaint component.
- price_gap (lower is better): our price / median competitor price over the last
  `competitor_window_days` - 1.
- demand_share: the SKU's share of its category's revenue over the window; `long_tail` marks SKUs outside
  the head that makes `head_share` (80%) of category revenue.
Normalisation is the percentile rank among SKUs that have the component, so "0.8" reads "better than
80% of SKUs". Contribution = weight * normalised / sum of weights; score = sum of contributions (0..1).
Decision: score >= expand_threshold -> expand, <= delist_threshold -> delist, else keep. `reasons` names
the strongest components for and against, with their raw values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

DEFAULT_CONFIG: dict[str, Any] = {
    "weights": {
        "trend": 0.25,
        "margin": 0.20,
        "return_rate": 0.15,
        "review_score": 0.15,
        "complaints": 0.10,
        "price_gap": 0.10,
        "demand_share": 0.05,
    },
    "expand_threshold": 0.65,
    "delist_threshold": 0.35,
    "window_days": 90,
    "competitor_window_days": 30,
    "min_reviews": 3,
    "head_share": 0.8,
    "reason_cutoff": 0.7,  # a component is a reason "for" above this normalised value, "against" below 1 - it
    "themes": {
        "late": [
            "late",
            "delay",
            "slow",
            "never arrived",
            "not arrived",
            "atras",
            "demor",
            "não chegou",
            "nao chegou",
            "não recebi",
            "nao recebi",
        ],
        "damaged": ["damaged", "broken", "crushed", "dented", "quebrad", "danificad", "avariad", "amassad"],
        "quality": [
            "quality",
            "poor",
            "cheap",
            "fell apart",
            "stopped working",
            "defect",
            "qualidade",
            "ruim",
            "péssim",
            "pessim",
            "defeito",
        ],
        "size": ["size", "too small", "too big", "fit", "tamanho", "pequen", "grande demais"],
        "price": ["price", "expensive", "overpriced", "preço", "preco", "caro"],
        "wrong_item": ["wrong", "different", "not as described", "errad", "diferente", "outro produto"],
    },
}

LOWER_IS_BETTER = {"return_rate", "complaints", "price_gap"}


@dataclass(frozen=True)
class SelectionResult:
    """Ranked SKUs with components, contributions, decision and reasons; and the category roll-up."""

    skus: pl.DataFrame
    categories: pl.DataFrame


def _merge_config(config: dict[str, Any] | None) -> dict[str, Any]:
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    cfg["weights"] = {**DEFAULT_CONFIG["weights"], **(config or {}).get("weights", {})}
    unknown = set(cfg["weights"]) - set(DEFAULT_CONFIG["weights"])
    if unknown:
        raise ValueError(f"selection config: unknown weight(s) {sorted(unknown)}")
    if sum(cfg["weights"].values()) <= 0:
        raise ValueError("selection config: weights must sum to a positive number")
    if not cfg["delist_threshold"] < cfg["expand_threshold"]:
        raise ValueError("selection config: delist_threshold must be below expand_threshold")
    return cfg


def _require(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"selection input `{name}`: missing column(s) {missing}; got {frame.columns}")


def review_themes(reviews: pl.DataFrame, themes: dict[str, list[str]]) -> pl.DataFrame:
    """Per SKU: review count, mean normalised score, low-score count, and low-score theme counts."""
    _require(reviews, ("sku", "score", "scale"), "reviews")
    text = pl.col("text").fill_null("").str.to_lowercase() if "text" in reviews.columns else pl.lit("")
    norm = (
        pl.when(pl.col("scale") == "nps_0_10").then(pl.col("score") / 10).otherwise((pl.col("score") - 1) / 4)
    )
    low = pl.when(pl.col("scale") == "nps_0_10").then(pl.col("score") <= 6).otherwise(pl.col("score") <= 2)
    flagged = reviews.filter(pl.col("sku").is_not_null()).with_columns(
        norm.alias("score_norm"), low.alias("low"), text.alias("t")
    )
    theme_cols = [
        (pl.col("low") & pl.col("t").str.contains_any(words, ascii_case_insensitive=True))
        .sum()
        .alias(f"theme_{name}")
        for name, words in themes.items()
    ]
    return flagged.group_by("sku").agg(
        pl.len().alias("n_reviews"),
        pl.col("score_norm").mean().alias("review_score_raw"),
        pl.col("low").sum().alias("n_low_reviews"),
        *theme_cols,
    )


def _components(
    demand: pl.DataFrame,
    products: pl.DataFrame,
    order_lines: pl.DataFrame | None,
    reviews: pl.DataFrame | None,
    competitor_prices: pl.DataFrame | None,
    as_of: dt.date,
    cfg: dict[str, Any],
) -> pl.DataFrame:
    """Raw component values per SKU (nulls where the data is missing)."""
    w = cfg["window_days"]
    last_start = as_of - dt.timedelta(days=w)
    prev_start = as_of - dt.timedelta(days=2 * w)
    d = demand.filter(pl.col("date") <= as_of).with_columns(
        (pl.col("units") * pl.col("avg_unit_price").fill_null(0.0)).alias("revenue")
    )
    sales = d.group_by("sku").agg(
        pl.col("category").last(),
        pl.col("date").min().alias("first_day"),
        pl.col("units").filter(pl.col("date") > last_start).sum().alias("units_last"),
        pl.col("units")
        .filter((pl.col("date") > prev_start) & (pl.col("date") <= last_start))
        .sum()
        .alias("units_prev"),
        pl.col("revenue").filter(pl.col("date") > last_start).sum().alias("revenue_last"),
    )
    base = (
        products.select("sku", pl.col("category").alias("category_p"), "unit_cost", "list_price")
        .join(sales, on="sku", how="full", coalesce=True)
        .with_columns(pl.coalesce("category", "category_p").alias("category"))
        .drop("category_p")
        .with_columns(
            pl.col("units_last").fill_null(0.0),
            pl.col("revenue_last").fill_null(0.0),
            pl.when(pl.col("units_last") > 0)
            .then(pl.col("revenue_last") / pl.col("units_last"))
            .otherwise(pl.col("list_price"))
            .alias("price"),
        )
        .with_columns(
            pl.when(pl.col("first_day") <= prev_start + dt.timedelta(days=1))
            .then(
                (
                    (pl.col("units_last") - pl.col("units_prev"))
                    / pl.max_horizontal(pl.col("units_prev"), 1.0)
                ).clip(-1, 3)
            )
            .otherwise(None)
            .alias("trend"),
            ((pl.col("price") - pl.col("unit_cost")) / pl.col("price")).alias("margin"),
        )
    )
    # Revenue share in the category and the long tail beyond the head that makes head_share of revenue.
    base = (
        base.sort("revenue_last", descending=True)
        .with_columns(
            (pl.col("revenue_last") / pl.col("revenue_last").sum().over("category"))
            .fill_nan(0.0)
            .alias("demand_share"),
        )
        .with_columns(
            (pl.col("demand_share").cum_sum().over("category") - pl.col("demand_share")).alias("share_before")
        )
        .with_columns((pl.col("share_before") >= cfg["head_share"]).alias("long_tail"))
        .drop("share_before")
    )
    if order_lines is not None and order_lines.height:
        _require(order_lines, ("sku", "quantity", "status"), "order_lines")
        ret = order_lines.group_by("sku").agg(
            (
                pl.col("quantity").filter(pl.col("status") == "returned").sum()
                / pl.col("quantity").filter(pl.col("status").is_in(["completed", "returned"])).sum()
            ).alias("return_rate")
        )
        base = base.join(ret, on="sku", how="left")
    else:
        base = base.with_columns(pl.lit(None, dtype=pl.Float64).alias("return_rate"))
    theme_names = [f"theme_{k}" for k in cfg["themes"]]
    if reviews is not None and reviews.height:
        rv = review_themes(reviews, cfg["themes"])
        base = base.join(rv, on="sku", how="left").with_columns(
            pl.col("n_reviews").fill_null(0),
            pl.col("n_low_reviews").fill_null(0),
            *[pl.col(c).fill_null(0) for c in theme_names],
        )
    else:
        base = base.with_columns(
            pl.lit(0).alias("n_reviews"),
            pl.lit(0).alias("n_low_reviews"),
            pl.lit(None, dtype=pl.Float64).alias("review_score_raw"),
            *[pl.lit(0).alias(c) for c in theme_names],
        )
    enough = pl.col("n_reviews") >= cfg["min_reviews"]
    base = base.with_columns(
        pl.when(enough).then(pl.col("review_score_raw")).otherwise(None).alias("review_score"),
        pl.when(enough)
        .then(pl.col("n_low_reviews") / pl.col("n_reviews"))
        .otherwise(None)
        .alias("complaints"),
    )
    if competitor_prices is not None and competitor_prices.height:
        _require(competitor_prices, ("date", "sku", "price"), "competitor_prices")
        comp = (
            competitor_prices.filter(
                pl.col("date") <= as_of,
                pl.col("date") > as_of - dt.timedelta(days=cfg["competitor_window_days"]),
            )
            .group_by("sku")
            .agg(pl.col("price").cast(pl.Float64).median().alias("competitor_median_price"))
        )
        base = base.join(comp, on="sku", how="left").with_columns(
            (pl.col("price") / pl.col("competitor_median_price") - 1).alias("price_gap")
        )
    else:
        base = base.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("competitor_median_price"),
            pl.lit(None, dtype=pl.Float64).alias("price_gap"),
        )
    return base


def _why(component: str, cfg: dict[str, Any]) -> pl.Expr:
    """Human-readable raw value of a component."""

    def signed_pct(c: str) -> pl.Expr:
        v = (pl.col(c) * 100).round(0).cast(pl.Int64)
        return pl.when(v > 0).then(pl.format("+{}", v)).otherwise(v.cast(pl.String))

    def pct(c: str) -> pl.Expr:
        return (pl.col(c) * 100).round(0).cast(pl.Int64).cast(pl.String)

    return {
        "trend": pl.format("demand {}% vs previous {} days", signed_pct("trend"), pl.lit(cfg["window_days"])),
        "margin": pl.format("margin {}%", pct("margin")),
        "return_rate": pl.format("return rate {}%", pct("return_rate")),
        "review_score": pl.format(
            "review score {}/5 over {} reviews",
            (pl.col("review_score") * 4 + 1).round(1),
            pl.col("n_reviews"),
        ),
        "complaints": pl.format("{}% low-score reviews{}", pct("complaints"), pl.col("themes_text")),
        "price_gap": pl.format("price {}% vs competitor median", signed_pct("price_gap")),
        "demand_share": pl.format("{}% of category revenue", (pl.col("demand_share") * 100).round(1)),
    }[component]


def select_products(
    demand: pl.DataFrame,
    products: pl.DataFrame,
    order_lines: pl.DataFrame | None = None,
    reviews: pl.DataFrame | None = None,
    competitor_prices: pl.DataFrame | None = None,
    config: dict[str, Any] | None = None,
    as_of: dt.date | None = None,
) -> SelectionResult:
    """Score, rank and decide every SKU and category (see the module docstring)."""
    cfg = _merge_config(config)
    _require(demand, ("sku", "category", "date", "units", "avg_unit_price"), "demand")
    _require(products, ("sku", "category", "unit_cost", "list_price"), "products")
    as_of = as_of or demand["date"].max()
    raw = _components(demand, products, order_lines, reviews, competitor_prices, as_of, cfg)
    weights = cfg["weights"]
    total_w = sum(weights.values())
    theme_names = list(cfg["themes"])
    themes_text = pl.concat_str(
        [
            pl.when(pl.col(f"theme_{t}") > 0).then(pl.format("{} x{}", pl.lit(t), pl.col(f"theme_{t}")))
            for t in theme_names
        ],
        separator=", ",
        ignore_nulls=True,
    )
    norm_cols = []
    for comp in weights:
        has = pl.col(comp).is_not_null() & pl.col(comp).is_not_nan()
        n = has.sum()
        rank = pl.when(has).then(pl.col(comp)).otherwise(None).rank("average")
        r = pl.when(n > 1).then((rank - 1) / (n - 1)).otherwise(0.5)
        if comp in LOWER_IS_BETTER:
            r = 1 - r
        norm_cols.append(pl.when(has).then(r).otherwise(0.5).alias(f"norm_{comp}"))
    scored = (
        raw.with_columns(pl.col(c).fill_nan(None) for c in weights)
        .with_columns(
            pl.when(themes_text.str.len_chars() > 0)
            .then(pl.format(" ({})", themes_text))
            .otherwise(pl.lit(""))
            .alias("themes_text")
        )
        .with_columns(norm_cols)
        .with_columns([(pl.col(f"norm_{c}") * w / total_w).alias(f"contrib_{c}") for c, w in weights.items()])
        .with_columns(pl.sum_horizontal([f"contrib_{c}" for c in weights]).alias("score"))
        .with_columns(
            pl.when(pl.col("score") >= cfg["expand_threshold"])
            .then(pl.lit("expand"))
            .when(pl.col("score") <= cfg["delist_threshold"])
            .then(pl.lit("delist"))
            .otherwise(pl.lit("keep"))
            .alias("decision"),
            pl.concat_str(
                [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in weights],
                separator=",",
                ignore_nulls=True,
            ).alias("missing"),
        )
    )
    # Reasons: the strongest components for (norm >= cutoff) and against (norm <= 1 - cutoff), by weight.
    cut = cfg["reason_cutoff"]
    long = (
        scored.select(
            "sku",
            *[
                pl.struct(
                    pl.lit(c).alias("component"),
                    (pl.col(f"norm_{c}") - 0.5).mul(weights[c]).alias("impact"),
                    pl.col(f"norm_{c}").alias("norm"),
                    _why(c, cfg).alias("why"),
                    pl.col(c).is_not_null().alias("has"),
                ).alias(c)
                for c in weights
            ],
        )
        .unpivot(index="sku", value_name="s")
        .unnest("s")
        .filter(pl.col("has"), (pl.col("norm") >= cut) | (pl.col("norm") <= 1 - cut))
    )
    reasons = (
        long.group_by("sku")
        .agg(
            pl.col("why")
            .sort_by("impact", descending=True)
            .filter(pl.col("impact").sort(descending=True) > 0)
            .head(2)
            .alias("for"),
            pl.col("why").sort_by("impact").filter(pl.col("impact").sort() < 0).head(2).alias("against"),
        )
        .with_columns(
            pl.concat_str(
                [
                    pl.when(pl.col("for").list.len() > 0).then(
                        pl.format("+ {}", pl.col("for").list.join("; "))
                    ),
                    pl.when(pl.col("against").list.len() > 0).then(
                        pl.format("- {}", pl.col("against").list.join("; "))
                    ),
                ],
                separator=" | ",
                ignore_nulls=True,
            ).alias("reasons")
        )
    )
    skus = (
        scored.join(reasons.select("sku", "reasons"), on="sku", how="left")
        .with_columns(pl.col("reasons").fill_null("no component stands out"))
        .sort("score", descending=True)
        .with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
        .select(
            "rank",
            "sku",
            "category",
            "score",
            "decision",
            "reasons",
            *weights,
            *[f"norm_{c}" for c in weights],
            *[f"contrib_{c}" for c in weights],
            "units_last",
            "units_prev",
            "revenue_last",
            "price",
            "competitor_median_price",
            "long_tail",
            "n_reviews",
            "n_low_reviews",
            *[f"theme_{t}" for t in theme_names],
            "missing",
        )
    )
    return SelectionResult(skus=skus, categories=_categories(skus, theme_names, cfg))


def _categories(skus: pl.DataFrame, theme_names: list[str], cfg: dict[str, Any]) -> pl.DataFrame:
    """Category roll-up: revenue-weighted score, decision mix, trend, long-tail share and top complaint theme."""
    weight = pl.col("revenue_last") + 1e-9
    cats = skus.group_by("category").agg(
        pl.len().alias("n_skus"),
        pl.col("revenue_last").sum().alias("revenue_last"),
        ((pl.col("score") * weight).sum() / weight.sum()).alias("score"),
        (pl.col("decision") == "expand").sum().alias("n_expand"),
        (pl.col("decision") == "keep").sum().alias("n_keep"),
        (pl.col("decision") == "delist").sum().alias("n_delist"),
        (pl.col("units_last").sum() / pl.max_horizontal(pl.col("units_prev").sum(), 1.0) - 1).alias("trend"),
        (pl.col("revenue_last").filter(pl.col("long_tail")).sum() / pl.col("revenue_last").sum()).alias(
            "long_tail_share"
        ),
        *[pl.col(f"theme_{t}").sum() for t in theme_names],
    )
    top_theme = (
        cats.select("category", *[f"theme_{t}" for t in theme_names])
        .unpivot(index="category", variable_name="theme", value_name="n")
        .filter(pl.col("n") > 0)
        .sort("n", descending=True)
        .group_by("category", maintain_order=True)
        .first()
        .select(
            "category",
            pl.col("theme").str.strip_prefix("theme_").alias("top_theme"),
            pl.col("n").alias("top_theme_n"),
        )
    )
    return (
        cats.join(top_theme, on="category", how="left")
        .with_columns(
            pl.when(pl.col("score") >= cfg["expand_threshold"])
            .then(pl.lit("expand"))
            .when(pl.col("score") <= cfg["delist_threshold"])
            .then(pl.lit("delist"))
            .otherwise(pl.lit("keep"))
            .alias("decision"),
        )
        .with_columns(
            pl.format(
                "{} of {} SKUs to expand, {} to delist; demand {}% vs previous window; long tail {}% of revenue{}",
                pl.col("n_expand"),
                pl.col("n_skus"),
                pl.col("n_delist"),
                (pl.col("trend") * 100).round(0).cast(pl.Int64),
                (pl.col("long_tail_share").fill_nan(0) * 100).round(0).cast(pl.Int64),
                pl.when(pl.col("top_theme").is_not_null())
                .then(pl.format("; top complaint: {} ({})", pl.col("top_theme"), pl.col("top_theme_n")))
                .otherwise(pl.lit("")),
            ).alias("reasons")
        )
        .sort("score", descending=True)
        .with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
        .select(
            "rank",
            "category",
            "score",
            "decision",
            "reasons",
            "n_skus",
            "revenue_last",
            "trend",
            "long_tail_share",
            "n_expand",
            "n_keep",
            "n_delist",
            "top_theme",
            "top_theme_n",
        )
    )
