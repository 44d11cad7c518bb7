"""A server without Slack or GitHub App settings starts without importing the optional client libraries.

Each library below adds megabytes of resident memory to the server process. The check runs in a
fresh interpreter, because other tests in this process import all of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import WEBHOOK_SECRET

REPO_ROOT = Path(__file__).resolve().parent.parent
LAZY_PACKAGES = ("slack_bolt", "slack_sdk", "aiohttp", "githubkit", "httpx", "alembic", "rich")

# Runs the app's lifespan and one request by hand, because TestClient and httpx's
# ASGITransport would import httpx themselves.
START_SCRIPT = """
import asyncio, json, sys

from bot.app import create_app
from bot.config import load_settings


async def request(app, method, path):
    messages = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return messages[0]["status"]


async def main():
    request_data = json.loads(sys.stdin.read())
    settings = load_settings(
        _env_file=None,
        database_url=request_data["database_url"],
        github_webhook_secret=request_data["secret"],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        ready = await request(app, "GET", "/readyz")
        slack = await request(app, "POST", "/slack/events")
    loaded = sorted(name for name in request_data["packages"] if name in sys.modules)
    print(json.dumps({"ready": ready, "slack": slack, "loaded": loaded}))


asyncio.run(main())
"""


def start_zero_config_app(database_url: str) -> dict[str, object]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLACK_", "GITHUB_"))}
    request = {"database_url": database_url, "secret": WEBHOOK_SECRET, "packages": LAZY_PACKAGES}
    result = subprocess.run(
        [sys.executable, "-c", START_SCRIPT],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_zero_config_start_skips_optional_clients(tmp_path: Path) -> None:
    outcome = start_zero_config_app(f"sqlite:///{tmp_path / 'fresh.db'}")

    assert outcome["ready"] == 200
    assert outcome["slack"] == 503
    assert outcome["loaded"] == []


def test_restart_on_current_schema_skips_alembic(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'bot.db'}"
    start_zero_config_app(database_url)

    outcome = start_zero_config_app(database_url)

    assert outcome["ready"] == 200
    assert outcome["loaded"] == []
