"""The browser harness itself: what it must catch, so that a quiet journey means a sound page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.harness import BROWSER_HOWTO, CHROMIUM, CSP_MARK, BrowserTrouble
from tests.waiting import wait_until

if CHROMIUM is None:
    pytest.skip(BROWSER_HOWTO, allow_module_level=True)

# What htmx does unless told not to (base.html's htmx-config): add its indicator rules inline.
ADD_INLINE_STYLE = (
    "document.head.insertAdjacentHTML('beforeend', '<style>p { color: red }</style>')"
)


def test_trouble_with_inline_style_blocked_by_csp_names_page_and_directive(
    page: Page, trouble: BrowserTrouble, server: str
) -> None:
    page.goto("/pricing")
    with page.expect_console_message(lambda message: CSP_MARK in message.text):
        page.evaluate(ADD_INLINE_STYLE)
    # The page's own report comes through a binding, which Playwright delivers while it talks
    # to the browser: each look asks the page something.
    blocked = f"CSP violation on {server}/pricing: "
    wait_until(
        lambda: page.evaluate("true") and blocked + "style-src-elem blocked inline" in trouble.seen,
        failure=f"no securitypolicyviolation report in {trouble.seen}",
    )
    assert any(
        line.startswith(blocked) and "Content Security Policy directive 'style-src" in line
        for line in trouble.seen
    ), trouble.seen
    # Seen as it should be; the page fixture would fail this test on it otherwise.
    trouble.seen.clear()
