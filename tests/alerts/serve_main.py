"""The real bot as a separate process for the crash test: `python -m tests.alerts.serve_main PORT`.

Settings come from the environment as in production (DATABASE_URL, SLACK_API_URL and so on);
the test kills the process with SIGKILL while it sends an alert.
"""

from __future__ import annotations

import sys

import uvicorn

from bot.app import create_app
from bot.config import load_settings

if __name__ == "__main__":
    uvicorn.run(
        create_app(load_settings()), host="127.0.0.1", port=int(sys.argv[1]), log_config=None
    )
