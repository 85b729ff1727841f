"""Tests for models/clv.py: BG/NBD + Gamma-Gamma fits, per-customer scores, holdout calibration.

Time unit is days everywhere except the CDNOW reference checks, which use the published weekly
estimates (r=0.243, alpha=4.414, a=0.793, b=2.426; p=6.25, q=3.74, v=15.44). The CDNOW alpha in
days is 4.41 x 7 = 30.87; r, a, b, p, q, v do not depend on the time unit.
"""

from __future__ import annotations

import math
import time
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import integrate, optimize, stats

from models import clv

# CDNOW estimates (Fader, Hardie & Lee 2005; Fader & Hardie 2013), alpha converted to days.
TRUE_BG = {"r": 0.24, "alpha": 4.41 * 7, "a": 0.79, "b": 2.43}
TRUE_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
PUBLISHED_BG_WEEKS = clv.BGNBDParams(
    r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, n_customers=0
)
PUBLISHED_GG = clv.GammaGammaParams(p=6.25, q=3.74, v=15.44, log_likelihood=0.0, n_customers=0)

# Five customers in weeks, T = 38.86 (the CDNOW calibration length); customer 3 is CDNOW customer 1.
TINY = pl.DataFrame(
    {
        "customer_id": [1, 2, 3, 4, 5],
        "frequency": [0, 1, 2, 2, 7],
        "recency": [0.0, 1.71, 30.43, 10.0, 35.0],
        "T": [38.86] * 5,
        "monetary_value": [0.0, 11.77, 22.35, 40.0, 30.0],
    }
)


def _xt(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        frame["frequency"].cast(pl.Float64).to_numpy(),
        frame["recency"].cast(pl.Float64).to_numpy(),
        frame["T"].cast(pl.Float64).to_numpy(),
    )


# ---------------------------------------------------------------------------------------------------
# Closed forms against independent computations
# ---------------------------------------------------------------------------------------------------


def _bgnbd_likelihood_by_integration(r, alpha, a, b, x, tx, T) -> float:
    """Integrate the individual-level BG/NBD likelihood over Gamma(lambda) and Beta(p) numerically.

    L(lambda, p | x, tx, T) = (1-p)^x lambda^x e^(-lambda T) + [x>0] p (1-p)^(x-1) lambda^x e^(-lambda tx)
    (FHL 2005 eq. 3); both terms factor into a lambda integral times a p integral.
    """
    g = stats.gamma(r, scale=1.0 / alpha)
    f = stats.beta(a, b)

    def lam_int(s: float) -> float:
        return integrate.quad(lambda lam: lam**x * math.exp(-lam * s) * g.pdf(lam), 0, np.inf, limit=200)[0]

    alive = integrate.quad(lambda p: (1 - p) ** x * f.pdf(p), 0, 1, limit=200)[0] * lam_int(T)
    if x == 0:
        return alive
    dead = integrate.quad(lambda p: p * (1 - p) ** (x - 1) * f.pdf(p), 0, 1, limit=200)[0] * lam_int(tx)
    return alive + dead


def test_bgnbd_log_likelihood_matches_numerical_integration() -> None:
    p = PUBLISHED_BG_WEEKS
    x, tx, T = _xt(TINY)
    by_integration = sum(
        math.log(_bgnbd_likelihood_by_integration(p.r, p.alpha, p.a, p.b, xi, ti, Ti))
        for xi, ti, Ti in zip(x, tx, T, strict=True)
    )
    closed = clv.bgnbd_log_likelihood(p.r, p.alpha, p.a, p.b, x, tx, T)
    assert closed == pytest.approx(by_integration, rel=1e-7)
    # and it is a real likelihood surface: other parameters give a different value
    assert clv.bgnbd_log_likelihood(p.r, p.alpha, 1.5, p.b, x, tx, T) != pytest.approx(closed, rel=1e-3)


def test_expected_purchases_and_p_alive_match_integration() -> None:
    """Eq. 10 and P(alive) against a 2-D integral over the posterior of (lambda, p)."""
    p = PUBLISHED_BG_WEEKS
    # log prior densities written out (scipy.stats' pdf per point would make dblquad take ~40 s)
    ln_norm = (
        p.r * math.log(p.alpha)
        - math.lgamma(p.r)
        - (math.lgamma(p.a) + math.lgamma(p.b) - math.lgamma(p.a + p.b))
    )
    t = 39.0
    for xi, txi, Ti in [(2, 30.43, 38.86), (1, 1.71, 38.86), (0, 0.0, 38.86)]:
        total = _bgnbd_likelihood_by_integration(p.r, p.alpha, p.a, p.b, xi, txi, Ti)

        def alive_density(lam: float, pp: float, xi=xi, Ti=Ti) -> float:
            # (1-p)^x lambda^x e^(-lambda T) x Gamma(lambda; r, alpha) x Beta(p; a, b)
            return math.exp(
                ln_norm
                + (xi + p.b - 1) * math.log1p(-pp)
                + (p.a - 1) * math.log(pp)
                + (xi + p.r - 1) * math.log(lam)
                - lam * (Ti + p.alpha)
            )

        # given alive with (lambda, p): E[purchases in t] = (1 - exp(-lambda p t)) / p  (FHL 2005 eq. 7)
        def future(lam: float, pp: float) -> float:
            return -math.expm1(-lam * pp * t) / pp

        alive_mass = integrate.dblquad(alive_density, 0, 1, 0, np.inf, epsrel=1e-8)[0]
        expected = integrate.dblquad(
            lambda lam, pp: alive_density(lam, pp) * future(lam, pp), 0, 1, 0, np.inf, epsrel=1e-8
        )[0]
        assert clv.probability_alive(p, [xi], [txi], [Ti])[0] == pytest.approx(alive_mass / total, rel=1e-5)
        assert clv.expected_purchases(p, t, [xi], [txi], [Ti])[0] == pytest.approx(expected / total, rel=1e-5)


def test_reference_values_at_published_cdnow_parameters() -> None:
    """Values of pymc-marketing 0.19.2 at the same parameters (computed once, independent code base).

    CDNOW customer 1 (x=2, tx=30.43, T=38.86) expects 1.226 purchases in the next 39 weeks, the value
    in Fader-Hardie's worked example.
    """
    x, tx, T = _xt(TINY)
    m = TINY["monetary_value"].to_numpy()
    np.testing.assert_allclose(
        clv.probability_alive(PUBLISHED_BG_WEEKS, x, tx, T),
        [1.0, 0.2121009853773791, 0.726578570080673, 0.26844602006228996, 0.8437678219280121],
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        clv.expected_purchases(PUBLISHED_BG_WEEKS, 39.0, x, tx, T),
        [0.19509805201125396, 0.2031869870797511, 1.226028174767135, 0.4529756278993038, 4.387487854487876],
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        clv.expected_average_order_value(PUBLISHED_GG, x, m),
        [35.21897810218978, 18.91685205784205, 24.663713910761157, 39.14041994750656, 30.307593030759303],
        rtol=1e-9,
    )


def test_analytic_gradients_match_finite_differences() -> None:
    """The fits use hand-derived gradients: check them against central differences."""
    sim = clv.simulate_gamma_gamma(clv.simulate_bgnbd(300, **TRUE_BG, T=273.0, seed=3), **TRUE_GG, seed=4)
    x, tx, T = _xt(sim)
    for theta in ([0.24, 30.9, 0.79, 2.43], [1.3, 5.0, 2.0, 0.7]):
        numeric = optimize.approx_fprime(
            np.array(theta), lambda th: clv.bgnbd_log_likelihood(*th, x, tx, T), 1e-7
        )
        analytic = clv.bgnbd_log_likelihood_gradient(*theta, x, tx, T).sum(axis=0)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-3)
    buyers = sim.filter(pl.col("frequency") > 0)
    xb, mb = buyers["frequency"].to_numpy(), buyers["monetary_value"].to_numpy()
    for theta in ([6.25, 3.74, 15.44], [2.0, 8.0, 60.0]):
        numeric = optimize.approx_fprime(
            np.array(theta), lambda th: clv.gamma_gamma_log_likelihood(*th, xb, mb), 1e-7
        )
        analytic = clv.gamma_gamma_log_likelihood_gradient(*theta, xb, mb).sum(axis=0)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-3)


def test_gamma_gamma_density_and_conditional_mean_match_integration() -> None:
    pp, q, v = TRUE_GG["p"], TRUE_GG["q"], TRUE_GG["v"]
    prior = stats.gamma(q, scale=1.0 / v)
    for x, mbar in [(1, 11.77), (2, 22.35), (7, 30.0)]:
        # mean of x order values given nu is Gamma(p x, rate x nu)
        def joint(nu: float, x=x, mbar=mbar) -> float:
            return stats.gamma.pdf(mbar, pp * x, scale=1.0 / (x * nu)) * prior.pdf(nu)

        density = integrate.quad(joint, 0, np.inf, limit=200)[0]
        mean = integrate.quad(lambda nu, joint=joint: pp / nu * joint(nu), 0, np.inf, limit=200)[0] / density
        assert clv.gamma_gamma_log_likelihood(pp, q, v, [x], [mbar]) == pytest.approx(
            math.log(density), rel=1e-8
        )
        assert clv.expected_average_order_value(PUBLISHED_GG, [x], [mbar])[0] == pytest.approx(mean, rel=1e-6)


# ---------------------------------------------------------------------------------------------------
# Parameter recovery on simulated data
# ---------------------------------------------------------------------------------------------------


def test_bgnbd_fit_recovers_cdnow_parameters() -> None:
    """50,000 customers, T uniform in 27-39 weeks (in days), as in the CDNOW cohort.

    a and b are weakly identified one by one (their estimates correlate at ~0.86; what the data pins
    down is the mean dropout a/(a+b)). Measured spread over 40 seeds at this size, one SD: r 0.9%,
    alpha 1.8%, a 4.5%, b 5.6%, a/(a+b) 1.7% (largest errors 2.4%, 4.2%, 10.8%, 12.7%, 3.9%). At
    20,000 customers b's SD is ~9% and single seeds reach +31%, so a 20% bar would be a 2-SD coin toss
    there. Tolerances here are >= 3.5 SD. The likelihood-ratio statistic against the true parameters
    must stay under the 99.9% chi-square(4) quantile, and the MLE cannot be worse than the truth.
    """
    n = 50_000
    T = np.random.default_rng(11).uniform(27 * 7, 39 * 7, size=n)
    sim = clv.simulate_bgnbd(n, **TRUE_BG, T=T, seed=12)
    fit = clv.fit_bgnbd(sim)
    assert fit.converged
    assert fit.n_customers == n
    assert fit.fit_seconds < 15.0  # ~0.5 s on an idle 2-core machine; generous for a loaded CI box
    for name, tol in [("r", 0.05), ("alpha", 0.08), ("a", 0.20), ("b", 0.20)]:
        assert getattr(fit, name) == pytest.approx(TRUE_BG[name], rel=tol), name
    mean_dropout = TRUE_BG["a"] / (TRUE_BG["a"] + TRUE_BG["b"])
    assert fit.a / (fit.a + fit.b) == pytest.approx(mean_dropout, rel=0.07)
    at_truth = clv.bgnbd_log_likelihood(*TRUE_BG.values(), *_xt(sim))
    assert fit.log_likelihood >= at_truth
    assert 2 * (fit.log_likelihood - at_truth) < stats.chi2.ppf(0.999, 4)
    assert fit.log_likelihood == pytest.approx(
        clv.bgnbd_log_likelihood(fit.r, fit.alpha, fit.a, fit.b, *_xt(sim)), rel=1e-12
    )
    # the model knows which simulated customers are still active: mean P(alive) = share alive
    p_alive = clv.probability_alive(fit, *_xt(sim))
    assert p_alive.mean() == pytest.approx(sim["alive"].mean(), abs=0.02)


def test_gamma_gamma_fit_recovers_cdnow_parameters() -> None:
    """Spend of the repeat buyers among 40,000 simulated customers (~17,000 buyers).

    Measured spread over 30 seeds: p 4.4%, q 1.9%, v 6.1%, population mean 0.6% (p and v are strongly
    correlated; their product is what the data pins down), hence 20% / 10% / 20% / 3%.
    """
    sim = clv.simulate_gamma_gamma(
        clv.simulate_bgnbd(40_000, **TRUE_BG, T=273.0, seed=21), **TRUE_GG, seed=22
    )
    fit = clv.fit_gamma_gamma(sim)
    assert fit.converged
    assert fit.n_customers == sim.filter(pl.col("frequency") > 0).height
    for name, tol in [("p", 0.20), ("q", 0.10), ("v", 0.20)]:
        assert getattr(fit, name) == pytest.approx(TRUE_GG[name], rel=tol), name
    true_mean = TRUE_GG["p"] * TRUE_GG["v"] / (TRUE_GG["q"] - 1)
    assert fit.population_mean == pytest.approx(true_mean, rel=0.03)
    buyers = sim.filter(pl.col("frequency") > 0)
    at_truth = clv.gamma_gamma_log_likelihood(
        *TRUE_GG.values(), buyers["frequency"].to_numpy(), buyers["monetary_value"].to_numpy()
    )
    assert 0 <= 2 * (fit.log_likelihood - at_truth) < stats.chi2.ppf(0.999, 3)


def test_fits_are_unit_consistent() -> None:
    """Same customers in weeks and in days: alpha scales by 7, r a b do not, P(alive) is unchanged."""
    weeks = clv.simulate_bgnbd(3000, 0.24, 4.41, 0.79, 2.43, T=39.0, seed=5)
    days = weeks.with_columns(pl.col("recency") * 7, pl.col("T") * 7)
    fw, fd = clv.fit_bgnbd(weeks), clv.fit_bgnbd(days)
    assert fd.alpha == pytest.approx(7 * fw.alpha, rel=1e-4)
    for name in ("r", "a", "b"):
        assert getattr(fd, name) == pytest.approx(getattr(fw, name), rel=1e-4)
    np.testing.assert_allclose(
        clv.probability_alive(fw, *_xt(weeks)), clv.probability_alive(fd, *_xt(days)), atol=1e-5
    )


# ---------------------------------------------------------------------------------------------------
# Per-customer properties and scoring
# ---------------------------------------------------------------------------------------------------


def test_p_alive_properties() -> None:
    p = clv.BGNBDParams(**TRUE_BG, log_likelihood=0.0, n_customers=0)
    # frequency 0: nobody can have dropped out yet (dropout happens only after a repeat purchase)
    assert np.all(clv.probability_alive(p, [0, 0, 0], [0, 0, 0], [1, 100, 1000]) == 1.0)
    T = np.array([60.0, 120.0, 200.0, 365.0, 730.0])
    pa = clv.probability_alive(p, np.full(5, 3), np.full(5, 50.0), T)
    assert np.all(np.diff(pa) < 0), pa  # longer silence since the last purchase -> less likely alive
    recency = np.array([10.0, 50.0, 100.0, 190.0])
    assert np.all(np.diff(clv.probability_alive(p, np.full(4, 3), recency, np.full(4, 200.0))) > 0)


def _scored(
    config: clv.ClvConfig | None = None,
) -> tuple[pl.DataFrame, clv.BGNBDParams, clv.GammaGammaParams]:
    sim = clv.simulate_gamma_gamma(clv.simulate_bgnbd(4000, **TRUE_BG, T=273.0, seed=31), **TRUE_GG, seed=32)
    summary = sim.select(clv.SUMMARY_COLUMNS).with_columns(pl.col("recency").round(0), pl.col("T").round(0))
    bg, gg = clv.fit_clv_models(summary)
    return clv.score_customers(summary, date(2025, 6, 30), bgnbd=bg, gamma_gamma=gg, config=config), bg, gg


def test_score_customers_outputs() -> None:
    scored, bg, gg = _scored()
    assert scored.height == 4000
    e30, e90, e365 = (scored[f"expected_purchases_{h}d"].to_numpy() for h in (30, 90, 365))
    assert np.all(e30 >= 0) and np.all(e90 >= e30) and np.all(e365 >= e90)
    assert np.all((e30 < e90)[scored["p_alive"].to_numpy() > 0.01])
    # one-time buyers get the population mean order value; repeat buyers are shrunk toward it
    one_timers = scored.filter(pl.col("frequency") == 0)
    assert one_timers["expected_aov"].to_numpy() == pytest.approx(gg.population_mean)
    buyers = scored.filter(pl.col("frequency") > 0)
    lo = np.minimum(buyers["monetary_value"].to_numpy(), gg.population_mean)
    hi = np.maximum(buyers["monetary_value"].to_numpy(), gg.population_mean)
    aov = buyers["expected_aov"].to_numpy()
    assert np.all((aov >= lo - 1e-9) & (aov <= hi + 1e-9))
    # churn bands follow the thresholds
    band = scored.select(
        bad=((pl.col("churn_risk") == "high") != (pl.col("p_alive") < 0.3)).sum()
        + ((pl.col("churn_risk") == "low") != (pl.col("p_alive") >= 0.7)).sum()
    )
    assert band["bad"][0] == 0
    assert set(scored["churn_risk"].unique()) == {"high", "medium", "low"}
    # next-order date: null exactly when P(alive) < 0.1, never beyond the cap, after as_of
    dates = scored.select("p_alive", "expected_next_order_date")
    assert dates.filter(pl.col("expected_next_order_date").is_null())["p_alive"].max() < 0.1
    assert dates.filter(pl.col("expected_next_order_date").is_not_null())["p_alive"].min() >= 0.1
    known = dates["expected_next_order_date"].drop_nulls()
    assert known.min() > date(2025, 6, 30) and known.max() <= date(2025, 6, 30) + timedelta(days=365)
    # heavier recent buyers are expected back sooner: gap = (alpha+T)/(r+x)
    row = scored.filter((pl.col("frequency") == 5) & (pl.col("p_alive") > 0.5)).row(0, named=True)
    gap = math.ceil((bg.alpha + row["T"]) / (bg.r + 5))
    assert row["expected_next_order_date"] == date(2025, 6, 30) + timedelta(days=gap)


def test_clv_discounting() -> None:
    """No discount: CLV telescopes to 12-month expected purchases x AOV; a higher rate lowers every CLV."""
    base, _, _ = _scored()
    flat, _, _ = _scored(clv.ClvConfig(monthly_discount_rate=0.0, horizons_days=(360,)))
    steep, _, _ = _scored(clv.ClvConfig(monthly_discount_rate=0.05))
    np.testing.assert_allclose(
        flat["predicted_clv"].to_numpy(),
        flat["expected_purchases_360d"].to_numpy() * flat["expected_aov"].to_numpy(),
        rtol=1e-9,
    )
    assert np.all(base["predicted_clv"].to_numpy() < flat["predicted_clv"].to_numpy())
    assert np.all(steep["predicted_clv"].to_numpy() < base["predicted_clv"].to_numpy())
    # with 1%/month the discount costs between (1 - 1/1.01^12) and 1% of the undiscounted value
    ratio = base["predicted_clv"].sum() / flat["predicted_clv"].sum()
    assert 1 / 1.01**12 < ratio < 1 / 1.01


def test_invalid_summary_names_customer_and_rule() -> None:
    bad = TINY.with_columns(
        pl.when(pl.col("customer_id") == 4).then(50.0).otherwise(pl.col("recency")).alias("recency")
    )
    with pytest.raises(ValueError, match=r"recency > T.*row 3 \(customer_id=4\)"):
        clv.fit_bgnbd(bad)
    with pytest.raises(ValueError, match="missing columns"):
        clv.fit_bgnbd(TINY.drop("T"))
    with pytest.raises(ValueError, match="at least one repeat buyer"):
        clv.fit_bgnbd(TINY.filter(pl.col("frequency") == 0))
    # a customer first seen on the as-of date (T = 0) is valid and scores as certainly alive
    today = pl.DataFrame(
        {"customer_id": [9], "frequency": [0], "recency": [0.0], "T": [0.0], "monetary_value": [0.0]}
    )
    scored = clv.score_customers(today, date(2025, 1, 1), bgnbd=PUBLISHED_BG_WEEKS, gamma_gamma=PUBLISHED_GG)
    assert scored["p_alive"][0] == 1.0 and scored["expected_aov"][0] == pytest.approx(
        PUBLISHED_GG.population_mean
    )


# ---------------------------------------------------------------------------------------------------
# Transactions -> summary, holdout calibration
# ---------------------------------------------------------------------------------------------------


def test_summary_from_transactions_lifetimes_convention() -> None:
    tx = pl.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c", "c"],
            "date": [
                date(2025, 1, 1),
                date(2025, 1, 1),  # same day: one purchase day worth 10 + 5
                date(2025, 1, 11),
                date(2025, 2, 1),
                date(2025, 1, 20),
                date(2025, 1, 5),
                date(2025, 3, 1),  # after observation end: ignored
            ],
            "value": [10.0, 5.0, 20.0, 40.0, 7.0, 3.0, 99.0],
        }
    )
    s = clv.summary_from_transactions(tx, date(2025, 2, 10)).sort("customer_id")
    assert s["frequency"].to_list() == [2, 0, 0]
    assert s["recency"].to_list() == [31, 0, 0]
    assert s["T"].to_list() == [40, 21, 36]
    assert s["monetary_value"].to_list() == [30.0, 0.0, 0.0]  # mean of the repeat days 20, 40
    with pytest.raises(ValueError, match="'date' must be Date"):
        clv.summary_from_transactions(tx.with_columns(pl.col("date").cast(pl.Datetime)), date(2025, 2, 10))


def test_calibration_holdout_on_simulated_transactions(tmp_path) -> None:
    """39-week calibration, 39-week holdout, 10,000 customers acquired over 12 weeks.

    Over 10 seeds the total error was within +-4%; the test allows 15% (the issue's bar) in total and
    25% in each of the well-populated groups 0-3.
    """
    start = date(2024, 1, 1)
    cutoff, end = start + timedelta(days=272), start + timedelta(days=545)
    tx = clv.simulate_bgnbd_transactions(
        10_000, **TRUE_BG, start=start, end=end, acquisition_days=84, seed=41
    )
    started = time.perf_counter()
    result = clv.calibration_holdout(tx, cutoff, end)
    assert time.perf_counter() - started < 5.0
    table = result.table
    assert table["frequency_group"].to_list() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert table["customers"].sum() == 10_000
    assert result.holdout_days == 273
    assert abs(result.total_relative_error) < 0.15
    assert result.actual_total == table["actual_total"].sum()
    head = table.head(4)
    rel = (head["predicted"] - head["actual"]).abs() / head["actual"]
    assert rel.max() < 0.25
    # predicted holdout purchases rise with calibration frequency, as the actual ones do
    assert np.all(np.diff(table["predicted"].to_numpy()) > 0)
    png = clv.calibration_chart(table, tmp_path / "calibration.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
