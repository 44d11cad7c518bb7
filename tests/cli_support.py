"""Helpers for tests of the `release-bot` command: an isolated environment for CliRunner, and
`release-bot serve` as a real process on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.config import Settings

# Starting includes the migrations, which take a few seconds on a loaded machine.
START_TIMEOUT_S = 60.0


def release_bot_command() -> list[str]:
    """Return the command that runs the CLI of the installed package."""
    script = Path(sys.executable).with_name("release-bot")
    if script.is_file():
        return [str(script)]
    found = shutil.which("release-bot")
    return [found] if found else [sys.executable, "-m", "bot.cli"]


def clean_environment(**variables: str) -> dict[str, str]:
    """Return an environment with only PATH, HOME and the given variables, so that no setting
    of the machine running the tests leaks into the bot."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    environment["HOME"] = os.environ.get("HOME", "/tmp")
    environment.update(variables)
    return environment


def isolate_settings(monkeypatch: pytest.MonkeyPatch, workdir: Path, **variables: str) -> None:
    """Remove every setting from the environment, set the given ones, and work in `workdir`,
    so that neither the machine's variables nor a `.env` file reach the command."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(workdir)


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put back the root logger's handlers, which every CLI command replaces."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """A running `release-bot serve` and the file its standard output goes to."""

    process: subprocess.Popen[bytes]
    base_url: str
    output_path: Path

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")


@contextmanager
def run_server(
    workdir: Path, environment: dict[str, str], *, name: str = "serve"
) -> Iterator[ServerProcess]:
    """Start `release-bot serve` in `workdir`, wait until /readyz returns 200, stop it at exit.

    The process is stopped by its own pid (SIGTERM, then SIGKILL after 15 s).
    """
    port = free_port()
    output_path = workdir / f"{name}-{port}.log"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [*release_bot_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", output_path)
    try:
        wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def wait_ready(server: ServerProcess) -> None:
    """Poll /readyz until it returns 200, or fail with the server's output."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"release-bot serve exited with {server.process.returncode}:\n{server.output()}"
            )
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"release-bot serve was not ready in {START_TIMEOUT_S} s:\n{server.output()}"
    )
