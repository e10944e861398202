"""Real HTTP against the app: a threaded WSGI server and a client that fills in CSRF tokens."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import httpx
from flask import Flask
from werkzeug.serving import make_server

from app.entitlements.fastpath import stop_check_cache

CSRF_INPUT = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


@contextmanager
def serve(make_app: Callable[[str], Flask]) -> Iterator[Flask]:
    """Serve the app that ``make_app(base_url)`` builds on a free local port, for the duration.

    The port is bound first, so the app knows its own URL (for Checkout's return URLs and the
    sandbox's webhook endpoint) before it is built.
    """
    server = make_server("127.0.0.1", 0, _not_ready, threaded=True)
    app = make_app(f"http://127.0.0.1:{server.server_port}")
    server.app = app
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        thread.join()
        stop_check_cache(app)


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


class WebClient(httpx.Client):
    """A browser-like client: keeps cookies, and posts forms with the page's CSRF token."""

    def csrf_token(self, path: str) -> str:
        """The CSRF token of the form on the page at ``path``."""
        page = self.get(path)
        match = CSRF_INPUT.search(page.text)
        assert match, f"no CSRF token on {path}"
        return match.group(1) or match.group(2)

    def submit(
        self, form_page: str, data: dict[str, Any], action: str | None = None
    ) -> httpx.Response:
        """Post ``data`` to the form at ``form_page`` (or to ``action``), as a browser would."""
        token = self.csrf_token(form_page)
        return self.post(action or form_page, data={"csrf_token": token, **data})

    def sign_up(self, email: str, password: str = "correct horse battery") -> httpx.Response:
        """Create an account through the sign-up page."""
        return self.submit("/signup", {"email": email, "password": password})

    def log_in(self, email: str, password: str = "correct horse battery") -> httpx.Response:
        """Log in through the log-in page."""
        return self.submit("/login", {"email": email, "password": password})


INLINE_TAGS = frozenset({"a", "strong", "em", "code", "small", "span", "b", "i", "abbr", "label"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        if tag not in INLINE_TAGS:
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1
        if tag not in INLINE_TAGS:
            self.chunks.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def visible_text(html: str) -> str:
    """The words a person reads on the page, whitespace collapsed."""
    parser = _TextExtractor()
    parser.feed(html)
    return " ".join("".join(parser.chunks).split())
