"""gunicorn.conf.py's start-up hook: which worker kinds it warns about."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from gunicorn.config import Config  # type: ignore[import-untyped]

from app.config import REPO_ROOT


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    # The file makes a metrics folder unless one is set: give it the test's.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("gunicorn_conf", REPO_ROOT / "gunicorn.conf.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("settings", "warns"),
    [
        ({"worker_class": "gthread", "threads": 16}, False),
        # gunicorn runs gthread for sync with threads, and names it so.
        ({"worker_class": "sync", "threads": 4}, False),
        ({"worker_class": "sync", "threads": 1}, True),
    ],
)
def test_gunicorn_start_with_worker_kind_warns_unless_gthread(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, object],
    warns: bool,
) -> None:
    conf = load_gunicorn_conf(monkeypatch, tmp_path)
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    server = SimpleNamespace(cfg=cfg, log=logging.getLogger("gunicorn.error"))

    with caplog.at_level(logging.WARNING, logger="gunicorn.error"):
        conf.on_starting(server)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if warns:
        assert warnings == [
            "Tollgate is served by sync workers: requests waiting on Stripe will hold up "
            "entitlement checks. Serve it with gthread, as gunicorn.conf.py does "
            "(docs/operations.md, gunicorn)."
        ]
    else:
        assert warnings == []
