"""Tollgate as an operator runs it, for tests: gunicorn and ``flask worker`` as processes of
their own, configured by the environment alone, started, killed and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.config import ENVIRONMENT_VARIABLES, REPO_ROOT

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tollgate_environ(**settings: str) -> dict[str, str]:
    """The process environment with none of Tollgate's variables but ``settings``."""
    environ = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    environ.update(FLASK_APP="wsgi", **settings)
    return environ


@dataclass
class Running:
    """One of Tollgate's processes, its output kept in a log file."""

    argv: list[str]
    environ: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Running:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
                self.argv, cwd=REPO_ROOT, env=self.environ, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, no transaction is finished, nothing is flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as a deploy or honcho's Ctrl-C sends; its exit code (None if it was gone)."""
        if self.process is None:
            return None
        self.process.terminate()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise
        finally:
            self.process = None
        return code

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def web(environ: dict[str, str], port: int, log: Path, workers: int = 2) -> Running:
    """gunicorn with the production settings (gunicorn.conf.py), answering on ``port``."""
    running = Running(
        [
            str(BIN / "gunicorn"),
            "--config",
            "gunicorn.conf.py",
            "--workers",
            str(workers),
            "wsgi:app",
        ],
        {**environ, "TOLLGATE_BIND": f"127.0.0.1:{port}"},
        log,
    ).start()
    deadline = time.monotonic() + 60
    while True:
        assert running.alive(), running.log_tail()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/pricing", timeout=5).status_code == 200:
                return running
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, running.log_tail()
        time.sleep(0.1)


def worker(environ: dict[str, str], log: Path, threads: int = 2) -> Running:
    """``flask worker``: the queue's tasks and the schedule."""
    return Running(
        [sys.executable, "-m", "flask", "worker", "--threads", str(threads)], environ, log
    ).start()
