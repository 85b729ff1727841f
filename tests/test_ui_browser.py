"""The Dagster UI as an analyst meets it: started on 127.0.0.1, opened in headless Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser import free_port, new_driver

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    port = free_port()
    env = dict(os.environ, DAGSTER_HOME=str(home))
    log = open(home / "webserver.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "pipelines.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/server_info", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("dagster-webserver exited: " + (home / "webserver.log").read_text()[-2000:])
            time.sleep(1)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        pytest.fail("dagster-webserver did not answer within 120 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _body(driver) -> str:
    return driver.find_element("tag name", "body").text


def test_asset_catalog_lists_the_marts(webserver: str, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = new_driver()
    try:
        driver.get(webserver + "/assets")
        WebDriverWait(driver, 90).until(lambda d: "customer_rfm" in _body(d))
        body = _body(driver)
        # The catalog is a virtualised list: the first marts alphabetically, with their group and docs.
        for name in ("carbon_per_order", "customer_rfm"):
            assert name in body
        assert "marts" in body and "One row per" in body
        driver.save_screenshot(str(tmp_path / "assets.png"))
        assert (tmp_path / "assets.png").stat().st_size > 10_000
        # Each mart has its own page with the grain from its dbt YAML.
        for name in ("nps_by_month", "inventory_turnover", "rfm_segment_summary"):
            driver.get(f"{webserver}/assets/{name}")
            WebDriverWait(driver, 60).until(lambda d, n=name: n in _body(d) and "One row per" in _body(d))
    finally:
        driver.quit()


def test_asset_graph_renders_the_groups(webserver: str, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = new_driver()
    try:
        driver.get(webserver + "/asset-groups")
        WebDriverWait(driver, 90).until(lambda d: "marts" in _body(d))
        body = _body(driver)
        assert "ingest" in body and "staging" in body
        driver.save_screenshot(str(tmp_path / "graph.png"))
    finally:
        driver.quit()
