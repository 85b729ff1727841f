"""Headless Chromium for the browser tests: installed from Debian's packages when missing, else skip."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

CHROME_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver; installs them with apt-get as root, or skips with the reason."""
    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chrome and driver:
        return chrome, driver
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("headless Chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
            check=True, env=env, timeout=900, capture_output=True,
        )
    except (subprocess.SubprocessError, OSError) as err:
        pytest.skip(f"could not install Chromium from Debian's packages: {err}")
    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chrome and driver):
        pytest.skip("apt-get ran but chromium/chromedriver are still missing")
    return chrome, driver


def new_driver(width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chrome, driver = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"shoplens-chrome-{os.getpid()}"
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
