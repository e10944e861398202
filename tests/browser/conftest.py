"""Browser fixtures: one Chromium per run, a fresh context per test, and what it must not see."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.browser.harness import (
    BROWSER_HOWTO,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    SCREENSHOTS,
    BrowserTrouble,
    Journey,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run on SQLite only: the database backend is not what they test."""
    here = Path(__file__).parent
    on_postgres = [
        item
        for item in items
        if here in item.path.parents
        and getattr(item, "callspec", None) is not None
        and item.callspec.params.get("migrated_database") == "postgresql"
    ]
    if on_postgres:
        config.hook.pytest_deselected(items=on_postgres)
        items[:] = [item for item in items if item not in on_postgres]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line, at the end, for a run without Chromium."""
    if CHROMIUM is None:
        terminalreporter.write_line(BROWSER_HOWTO, yellow=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, shared by the run's tests."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def live_app(synced: Flask) -> Flask:
    """The app as in development: catalog in the sandbox, webhooks delivered in the background."""
    synced.extensions["stripe_sandbox"].start_delivery_thread(interval=0.2)
    return synced


@pytest.fixture
def viewport() -> ViewportSize:
    """The window size; a test parametrizes it to run at a phone's width."""
    return DESKTOP


@pytest.fixture
def trouble() -> BrowserTrouble:
    """What went wrong in the browser during the test; the test fails if anything did."""
    return BrowserTrouble()


@pytest.fixture
def page(
    browser: Browser,
    live_app: Flask,
    server: str,
    viewport: ViewportSize,
    trouble: BrowserTrouble,
) -> Iterator[Page]:
    """A tab in a fresh browser context (no cookies), on the served app."""
    context = browser.new_context(base_url=server, viewport=viewport)
    tab = context.new_page()
    trouble.watch(tab)
    yield tab
    context.close()
    assert not trouble.seen, "the browser ran into trouble:\n" + "\n".join(trouble.seen)


@pytest.fixture
def journey(page: Page, viewport: ViewportSize, request: pytest.FixtureRequest) -> Journey:
    """Screenshots of the test's steps in artifacts/screenshots/<journey>/NN-step.png."""
    name = request.node.originalname.removeprefix("test_")
    if viewport != DESKTOP:
        name += f"-{viewport['width']}px"
    folder = SCREENSHOTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Journey(page, folder)
