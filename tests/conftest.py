"""Shared pytest configuration."""

# ---------------------------------------------------------------------------- playground (app tests)
# Fixtures of tests/test_playground_*.py, and the headless Chromium that dash[testing]'s dash_duo drives.
import shutil

import pytest

from tests.playground_fixtures import (  # noqa: F401
    artifacts_copy,
    axe_script,
    old_store,
    playground_artifacts,
    screenshot_dir,
    store,
    trust,
    trusted_artifacts,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Every browser test is also slow: `pytest -m "not slow"` (the fast tier) never starts Chromium."""
    for item in items:
        if item.get_closest_marker("browser") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


def pytest_setup_options():
    """Chrome options for dash_duo: headless Chromium as root on a small machine."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--window-size=1400,1100",
    ):
        options.add_argument(argument)
    return options
