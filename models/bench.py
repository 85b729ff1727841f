"""Time the global forecaster on synthetic series: training (the weekly job) and a daily forecast from the
trained model a day later (the nightly job).

    python -m models.bench --skus 2000 --days 730            # with and without the Prophet step
    python -m models.bench --skus 500 --days 730 --prophet off

Prints wall-clock and CPU seconds and SKU-series per second for training and for the daily forecast. Wall time on a shared machine
depends on what else runs; CPU seconds / cores is the machine-independent floor. `--threads 1` on a busy
machine: scikit-learn's OpenMP threads spin-wait at every barrier, and with more runnable processes than
cores a 2-thread fit was measured many times slower than a 1-thread one.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import polars as pl

from models.forecasting import ForecastConfig, GlobalForecaster, forecast_with
from models.synthetic_series import generate_shop


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (Prophet's Stan runs in a child process)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(
    skus: int, days: int, use_prophet: bool, seed: int = 7, horizon: int = 28, threads: int | None = None
) -> dict[str, float]:
    """Generate the series, fit and forecast once; return timings and throughput."""
    shop = generate_shop(skus, days, seed=seed)
    last = shop.demand["date"].max()
    forecaster = GlobalForecaster(ForecastConfig(horizon=horizon, use_prophet=use_prophet, n_threads=threads))
    t0, c0 = time.perf_counter(), _cpu_seconds()
    trained = forecaster.fit(shop.demand.filter(pl.col("date") < last), shop.calendar).trained()
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    t1, c1 = time.perf_counter(), _cpu_seconds()
    out = forecast_with(trained, shop.demand, shop.calendar)  # the next night: predict only
    p_wall, p_cpu = time.perf_counter() - t1, _cpu_seconds() - c1
    return {
        "skus": skus,
        "days": days,
        "prophet": use_prophet,
        "wall_s": wall,
        "cpu_s": cpu,
        "series_per_s": skus / wall,
        "predict_wall_s": p_wall,
        "predict_cpu_s": p_cpu,
        "predict_series_per_s": skus / p_wall,
        "rows_out": out.height,
        "train_rows": sum(forecaster.diagnostics.get("train_rows", [])),  # type: ignore[arg-type]
        "calibration_coverage": forecaster.diagnostics["calibration_coverage"],  # type: ignore[dict-item]
        "intermittent_model": forecaster.diagnostics["intermittent_model"],  # type: ignore[dict-item]
        "pinball_global": forecaster.diagnostics["intermittent_pinball_global"],  # type: ignore[dict-item]
        "pinball_sba": forecaster.diagnostics["intermittent_pinball_sba"],  # type: ignore[dict-item]
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prophet", choices=("both", "on", "off"), default="both")
    parser.add_argument(
        "--threads", type=int, default=None, help="OpenMP threads for the model (default: all)"
    )
    args = parser.parse_args(argv)
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.prophet]
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start")
    for use_prophet in modes:
        r = run(args.skus, args.days, use_prophet, args.seed, threads=args.threads)
        print(
            f"{r['skus']} SKUs x {r['days']} days, prophet={'on' if r['prophet'] else 'off'}, "
            f"threads={args.threads or os.cpu_count()}: "
            f"training {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, {r['series_per_s']:.0f} series/s; "
            f"daily forecast {r['predict_wall_s']:.2f} s wall, {r['predict_cpu_s']:.1f} s CPU, "
            f"{r['predict_series_per_s']:.0f} series/s; "
            f"{r['train_rows']} training rows; calibration coverage "
            f"{r['calibration_coverage']:.3f}; intermittent SKUs -> {r['intermittent_model']} "
            f"(mean pinball global {r['pinball_global']:.4f} vs SBA {r['pinball_sba']:.4f})"
        )
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
