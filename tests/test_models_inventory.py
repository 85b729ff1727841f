"""Inventory policy on a worked example and random inputs; the replenishment simulation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from models.forecasting import ForecastConfig
from models.inventory_policy import PolicyConfig, policy_parameters, purchase_orders, replenishment_plan
from models.simulation import naive_parameters, replay, run_policy, summarize
from models.synthetic_series import generate_shop

TODAY = dt.date(2024, 1, 1)
Z97 = 1.8807936081512509  # norm.ppf(0.97)
SIGMA_D = 10 / 2.563  # (p90 - p10) / 2.563 for p10 = 5, p90 = 15


def _flat_forecast(
    sku: str = "A", days: int = 28, p10: float = 5, p50: float = 10, p90: float = 15
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sku": sku,
            "date": [TODAY + dt.timedelta(days=k) for k in range(1, days + 1)],
            "p10": float(p10),
            "p50": float(p50),
            "p90": float(p90),
        }
    )


def _products(**extra: object) -> pl.DataFrame:
    return pl.DataFrame({"sku": ["A"], "supplier": ["sup_1"], "lead_time_days": [4], **extra})


def test_worked_example_by_hand() -> None:
    """Flat 10/day, P10-P90 5..15, lead time 4 days, review 7 days, on hand 30 + on order 10, packs of 10."""
    plan = replenishment_plan(
        _flat_forecast(),
        _products(pack_size=[10]),
        pl.DataFrame({"sku": ["A"], "on_hand": [30], "on_order": [10]}),
        TODAY,
    ).row(0, named=True)
    sigma_lt = SIGMA_D * 2  # sqrt(4 days) * sigma_d
    ss = Z97 * sigma_lt  # 14.677
    rop = 40 + ss  # 54.677
    out = rop + 70  # 124.677
    assert plan["lead_time_demand"] == pytest.approx(40)
    assert plan["lead_time_std"] == pytest.approx(sigma_lt)
    assert plan["safety_stock"] == pytest.approx(ss)
    assert plan["reorder_point"] == pytest.approx(rop)
    assert plan["order_up_to"] == pytest.approx(out)
    assert plan["inventory_position"] == 40
    assert plan["order_due"] is True and plan["order_date"] == TODAY
    assert plan["order_qty_now"] == 90  # 84.68 rounded up to packs of 10
    assert plan["needed_by"] == TODAY + dt.timedelta(days=4)
    assert plan["days_of_supply"] == pytest.approx(3.0)  # 30 on hand / 10 a day
    assert plan["stockout_risk"] == pytest.approx(0.5)  # position equals mean lead-time demand


def test_future_order_date_and_quantity_by_hand() -> None:
    stock = pl.DataFrame({"sku": ["A"], "on_hand": [100], "on_order": [10]})
    plan = replenishment_plan(_flat_forecast(), _products(pack_size=[10]), stock, TODAY).row(0, named=True)
    # position 110 reaches ROP 54.68 once cumulative demand >= 55.32: day 6 (60 units)
    assert plan["order_due"] is False
    assert plan["order_date"] == TODAY + dt.timedelta(days=6)
    assert plan["order_qty"] == 80  # 124.68 - (110 - 60) = 74.68 -> packs of 10
    assert plan["order_qty_now"] == 20  # 124.68 - 110 = 14.68 -> one pack of 10 is not enough
    assert plan["stockout_risk"] < 1e-6
    assert purchase_orders(pl.DataFrame([plan]), TODAY).is_empty()
    assert purchase_orders(pl.DataFrame([plan]), TODAY, within_days=6)["quantity"].to_list() == [80]


def test_lead_time_variability_moq_and_long_lead_times() -> None:
    stock = pl.DataFrame({"sku": ["A"], "on_hand": [0]})
    p = policy_parameters(_flat_forecast(), _products(lead_time_std_days=[1.0]), TODAY).row(0, named=True)
    assert p["lead_time_std"] == pytest.approx(np.sqrt(4 * SIGMA_D**2 + 10**2 * 1.0**2))
    p30 = policy_parameters(
        _flat_forecast(),
        _products(lead_time_days=[30])
        .drop("lead_time_days")
        .with_columns(pl.lit(30).alias("lead_time_days")),
        TODAY,
    ).row(0, named=True)
    assert p30["lead_time_demand"] == pytest.approx(300)  # days 29-30 repeat the horizon's average day
    assert p30["review_demand"] == pytest.approx(70)
    small = pl.DataFrame({"sku": ["A"], "on_hand": [120], "on_order": [0]})
    plan = replenishment_plan(_flat_forecast(), _products(moq=[50]), small, TODAY).row(0, named=True)
    assert plan["order_qty_now"] == 50  # 4.68 needed, MOQ 50
    assert replenishment_plan(_flat_forecast(), _products(), stock, TODAY)["order_qty_now"][0] == 125


def test_warehouse_split_and_missing_lead_time() -> None:
    stock = pl.DataFrame({"sku": ["A", "A"], "warehouse": ["north", "south"], "on_hand": [0, 50]})
    plan = replenishment_plan(_flat_forecast(), _products(), stock, TODAY).sort("warehouse")
    assert plan["lead_time_demand"].to_list() == pytest.approx([20, 20])  # equal shares of 40
    assert plan["order_due"].to_list() == [True, False]
    with pytest.raises(ValueError, match="lead_time_days"):
        policy_parameters(
            _flat_forecast(),
            _products(lead_time_days=[None]).with_columns(pl.col("lead_time_days").cast(pl.Int64)),
            TODAY,
        )
    with pytest.raises(ValueError, match="service_level"):
        policy_parameters(_flat_forecast(), _products(), TODAY, PolicyConfig(service_level=1.2))


def test_random_inputs_never_give_negative_or_inconsistent_orders() -> None:
    rng = np.random.default_rng(42)
    n, days = 300, 28
    skus = [f"S{i:03d}" for i in range(n)]
    p50 = rng.gamma(0.6, 5, (n, 1)) * rng.uniform(0.5, 1.5, (n, days))
    p10 = p50 * rng.uniform(0, 1, (n, days))
    p90 = p50 * rng.uniform(1, 4, (n, days))
    fc = pl.DataFrame(
        {
            "sku": np.repeat(skus, days),
            "date": [TODAY + dt.timedelta(days=k) for k in range(1, days + 1)] * n,
            "p10": p10.ravel(),
            "p50": p50.ravel(),
            "p90": p90.ravel(),
        }
    )
    products = pl.DataFrame(
        {
            "sku": skus,
            "supplier": rng.choice(["a", "b"], n),
            "lead_time_days": rng.integers(0, 45, n),
            "lead_time_std_days": rng.uniform(0, 5, n),
            "moq": rng.integers(0, 20, n),
            "pack_size": rng.integers(1, 12, n),
        }
    )
    stock = pl.DataFrame(
        {"sku": skus, "on_hand": rng.integers(0, 400, n), "on_order": rng.integers(0, 100, n)}
    )
    plan = replenishment_plan(
        fc, products, stock, TODAY, PolicyConfig(service_level=float(rng.uniform(0.8, 0.99)))
    )
    assert plan.height == n
    assert (plan["order_qty_now"] >= 0).all() and (plan["order_qty"] >= 0).all()
    assert (plan["safety_stock"] >= 0).all()
    assert (plan["reorder_point"] >= plan["lead_time_demand"]).all()
    assert (plan["order_up_to"] >= plan["reorder_point"]).all()
    assert plan["stockout_risk"].is_between(0, 1).all()
    assert (plan.filter(pl.col("order_date").is_not_null())["order_date"] >= TODAY).all()
    # an order is due today exactly when the position is at or below the reorder point
    assert (plan["order_due"] == (plan["inventory_position"] <= plan["reorder_point"])).all()
    # positive quantities respect MOQ and pack size
    joined = plan.join(products.select("sku", "moq", "pack_size"), on="sku").filter(
        pl.col("order_qty_now") > 0
    )
    assert (joined["order_qty_now"] >= joined["moq"]).all()
    assert (joined["order_qty_now"] % joined["pack_size"] == 0).all()
    po = purchase_orders(plan, TODAY)
    assert po.height == plan.filter(pl.col("order_due") & (pl.col("order_qty") > 0)).height
    assert (po["quantity"] > 0).all()


def test_run_policy_by_hand() -> None:
    """One SKU, 2 units a day, lead time 2, reorder point 4 up to 10, starting with 6 on hand."""
    demand = np.full((1, 6), 2.0)
    trace = run_policy(demand, np.array([2]), np.array([6.0]), np.array([4.0]), order_up_to=np.array([10.0]))
    # day0: 6-2=4 <= 4 -> order 6 (arrives day 2); day1: 2, position 8; day2: 2+6-2=6, position 6
    # day3: 4 -> order 6 (arrives day 5); day4: 2, position 8; day5: 2+6-2=6
    assert trace["on_hand"][0].tolist() == [4, 2, 6, 4, 2, 6]
    assert trace["ordered"][0].tolist() == [6, 0, 0, 6, 0, 0]
    assert trace["lost"].sum() == 0
    # same demand with no replenishment at all: stock-outs from day 3 on
    dry = run_policy(demand, np.array([2]), np.array([6.0]), np.array([-1.0]), order_qty=np.array([1.0]))
    assert dry["lost"][0].tolist() == [0, 0, 0, 2, 2, 2]
    s = summarize(dry, demand, np.array([3.0]))
    assert s["stockout_rate"] == pytest.approx(0.5)
    assert s["fill_rate"] == pytest.approx(0.5)
    assert s["avg_inventory_units"] == pytest.approx((4 + 2) / 6)
    assert s["dio"] == pytest.approx((6 * 3 / 6) / (6 * 3 / 6))  # avg value 3, COGS 3 per day
    # the shop's rule: reorder point ceil(1.2 * L * m), quantity ceil(32.5 * m) and at least 2
    level, qty = naive_parameters(np.array([2.0, 0.01]), np.array([5, 3]))
    assert level.tolist() == [12.0, 1.0] and qty.tolist() == [65.0, 2.0]


def test_one_outstanding_order_by_hand() -> None:
    """The shop's rule orders only when nothing is on order: 3 a day, lead time 3, level 8, quantity 9."""
    demand = np.full((1, 7), 3.0)
    args = (demand, np.array([3]), np.array([12.0]), np.array([8.0]))
    once = run_policy(*args, order_qty=np.array([9.0]), one_outstanding=True)
    # day0: 9 on hand; day1: 6 <= 8 -> order 9 (arrives day 4); days 2-3: 3, 0 with 9 on order, no order;
    # day4: 0 + 9 - 3 = 6, nothing on order -> order 9 (arrives day 7); days 5-6: 3, 0
    assert once["ordered"][0].tolist() == [0, 9, 0, 0, 9, 0, 0]
    assert once["on_hand"][0].tolist() == [9, 6, 3, 0, 6, 3, 0]
    # with a level of 16 the position rule orders on day 0 and again on day 1 (6 + 9 on order <= 16);
    # the shop's rule waits for the first order to arrive (day 3: 3 + 9 - 3 = 9 <= 16)
    many = run_policy(*args[:3], np.array([16.0]), order_qty=np.array([9.0]))
    assert many["ordered"][0].tolist()[:3] == [9, 9, 0]
    once16 = run_policy(*args[:3], np.array([16.0]), order_qty=np.array([9.0]), one_outstanding=True)
    assert once16["ordered"][0].tolist()[:4] == [9, 0, 0, 9]


def test_poisson_floor_for_a_collapsed_quantile_band() -> None:
    """P10 = P50 = P90 = 0 with a mean of 1 a day (an intermittent SKU): variance is the mean, not 0."""
    fc = _flat_forecast(p10=0, p50=0, p90=0).with_columns(pl.lit(1.0).alias("mean"))
    p = policy_parameters(fc, _products(), TODAY).row(0, named=True)
    assert p["lead_time_demand"] == pytest.approx(4)
    assert p["lead_time_std"] == pytest.approx(2.0)  # sqrt(4 days * variance 1)
    assert p["safety_stock"] == pytest.approx(Z97 * 2.0)
    assert p["reorder_point"] == pytest.approx(4 + Z97 * 2.0)
    # a narrow band (sigma 0.39, variance 0.152) on a mean of 10: the floor (10) wins; a wide one does not
    narrow = policy_parameters(_flat_forecast(p10=9.5, p90=10.5), _products(), TODAY).row(0, named=True)
    assert narrow["lead_time_std"] == pytest.approx(np.sqrt(4 * 10))
    wide = policy_parameters(_flat_forecast(p10=0, p90=20), _products(), TODAY).row(0, named=True)
    assert wide["lead_time_std"] == pytest.approx(np.sqrt(4 * (20 / 2.563) ** 2))


def test_replay_forecast_policy_against_naive() -> None:
    shop = generate_shop(n_skus=40, n_days=420, seed=5)
    start = shop.demand["date"].max() - dt.timedelta(days=70)
    result = replay(
        shop.demand,
        shop.calendar,
        shop.products,
        start,
        days=70,
        demand_column="true_demand",
        warmup_days=21,
        forecast_config=ForecastConfig(max_iter=40, min_samples_leaf=50, use_prophet=False, n_threads=1),
    )
    s = {r["policy"]: r for r in result.summary.iter_rows(named=True)}
    ours, naive = s["forecast_policy"], s["naive_policy"]
    # the goal: stock-outs at or under 3% with less average inventory than the shop's own rule
    # (measured: 1.8% and 35k against 2.9% and 73k; fill rates 96.9% and 97.0%)
    assert ours["stockout_rate"] <= 0.03
    assert ours["stockout_rate"] < naive["stockout_rate"]
    assert ours["avg_inventory_value"] < 0.8 * naive["avg_inventory_value"]
    assert ours["fill_rate"] >= 0.95
    # at equal service the naive rule needs more stock than the forecast policy
    matched = s.get("naive_policy_matched")
    assert matched is None or matched["avg_inventory_value"] > ours["avg_inventory_value"]
    assert set(result.daily["policy"]) == {"forecast_policy", "naive_policy"}
    assert (result.daily["on_hand"] >= 0).all()
