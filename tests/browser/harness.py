"""The browser under test (Debian's Chromium), what it must not run into, journey screenshots."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page, Request, Response, ViewportSize

from app.config import REPO_ROOT

CHROMIUM = shutil.which("chromium")

# No sandbox: CI runs as root in a container. The rest keeps Chromium from calling home,
# so that a run makes no requests but the ones the pages make.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

BROWSER_HOWTO = (
    "Browser tests skipped: no `chromium` on PATH; install it (apt-get install chromium, "
    "as .ci/run does) to run tests/browser"
)

SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

# Chromium's console text for anything the Content-Security-Policy blocked.
CSP_MARK = "Content Security Policy"
# In every document, before its own scripts: hand each CSP violation to the test as it happens
# (a list kept in `window` would be lost with the next navigation, often a form's redirect).
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  const where = event.sourceFile ? ` at ${event.sourceFile}:${event.lineNumber}` : "";
  const sample = event.sample ? ` (${event.sample})` : "";
  window.reportCspViolation(
    event.documentURI, `${event.effectiveDirective} blocked ${event.blockedURI}${where}${sample}`
  );
});
"""


@dataclass
class BrowserTrouble:
    """Console errors, uncaught exceptions, failed requests and CSP violations a page ran into."""

    seen: list[str] = field(default_factory=list)
    expected: list[tuple[str, str, int]] = field(default_factory=list)

    def expect_response(self, method: str, url: str, status: int) -> None:
        """Let one error answer through that the journey causes on purpose."""
        self.expected.append((method, url, status))

    def watch(self, page: Page) -> None:
        """Record what goes wrong on ``page`` from now on."""
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self._note("uncaught exception", page.url, str(error)))
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)
        page.expose_function("reportCspViolation", self._on_csp_violation)
        page.add_init_script(REPORT_CSP_VIOLATIONS)

    def _note(self, what: str, url: str, text: str) -> None:
        kind = "CSP violation" if CSP_MARK in text else what
        self.seen.append(f"{kind} on {url}: {text}")

    def _on_csp_violation(self, url: str, text: str) -> None:
        self._note("CSP violation", url, text)

    def _on_console(self, message: ConsoleMessage) -> None:
        # A CSP message fails the test whatever its level (a report-only policy only warns).
        if message.type != "error" and CSP_MARK not in message.text:
            return
        # Chromium also logs every error answer to the console, as "Failed to load resource".
        if any(
            message.location.get("url") == url and f"status of {status}" in message.text
            for _, url, status in self.expected
        ):
            return
        page = message.page.url if message.page else message.location.get("url", "")
        self._note("console error", page, message.text)

    def _on_request_failed(self, request: Request) -> None:
        self.seen.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _on_response(self, response: Response) -> None:
        if response.status < 400:
            return
        answer = (response.request.method, response.url, response.status)
        if answer not in self.expected:
            self.seen.append(f"error answer: {answer[0]} {answer[1]} -> {answer[2]}")


@dataclass
class Journey:
    """A journey's steps, each saved as a screenshot a person can look at."""

    page: Page
    folder: Path
    steps: int = 0

    def step(self, name: str) -> None:
        """Save the page as the next step, and check that it fits the window's width."""
        self.steps += 1
        self.page.screenshot(path=self.folder / f"{self.steps:02d}-{name}.png", full_page=True)
        width = self.page.evaluate("document.documentElement.scrollWidth")
        window = self.page.viewport_size
        assert window is not None
        assert width <= window["width"], (
            f"step {name}: the page is {width}px wide in a {window['width']}px window"
        )
